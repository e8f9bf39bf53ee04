"""The built wheel works outside the repository, installed the way the Dockerfile installs it.

A new user runs ``pip install finpulse`` and then ``finpulse ...`` from any directory. This
builds the wheel, installs it into a fresh virtual environment with
``scripts/install-wheel.sh`` (the Dockerfile's installer), and drives the main verbs from an
empty directory with no ``PYTHONPATH``, so nothing can be read from the source tree: the
datasets, the sample feed and the Lua scripts must come from the installed package.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def venv_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("wheel")
    dist = root / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(REPO)],
        check=True,
    )
    (wheel,) = dist.glob("finpulse-*.whl")
    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True)
    bin_dir = root / "venv" / "bin"
    # From outside the source tree: `python -m pip` puts the cwd on sys.path, and a build
    # leaves finpulse.egg-info there, which pip would take for an installed finpulse.
    env = {**_outside_env(), "PIP": f"{bin_dir / 'python'} -m pip", "PIP_NO_COMPILE": "1"}
    subprocess.run(["sh", str(REPO / "scripts" / "install-wheel.sh"), str(wheel)], env=env,
                   cwd=root, check=True)  # fmt: skip
    return bin_dir


def _outside_env() -> dict[str, str]:
    """The environment of a user elsewhere: no PYTHONPATH, no FINPULSE_* settings."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and "FINPULSE" not in k}


def _finpulse(bin_dir: Path, cwd: Path, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [str(bin_dir / "finpulse"), *args], cwd=cwd, env=_outside_env(), input=stdin, text=True,
        capture_output=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, f"finpulse {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_the_installed_wheel_runs_every_offline_verb_from_an_empty_directory(
    venv_bin: Path, tmp_path: Path
) -> None:
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = subprocess.run(
        [str(venv_bin / "python"), "-c", "import stream_app, finpulse; print(stream_app.__file__)"],
        cwd=work, env=_outside_env(), capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "site-packages" in where
    assert str(REPO) not in where

    _finpulse(venv_bin, work, "train", "--profile", "quick", "--output", "m", "--max-steps", "2",
              "--limit-train", "64", "--limit-valid", "32", "--no-progress")  # fmt: skip
    assert (work / "m" / "manifest.json").is_file()

    out = _finpulse(venv_bin, work, "predict", "--model", "m", "--json",
                    stdin="Tesla shares plunge after recall\nApple beats estimates\n")  # fmt: skip
    preds = [json.loads(line) for line in out.splitlines()]
    texts = [p["text"] for p in preds]
    assert texts == ["Tesla shares plunge after recall", "Apple beats estimates"]

    rows = ["Shares plunge after the recall,0", "Record profit lifts stock,1",
            "Company holds annual meeting,2"] * 10  # fmt: skip
    (work / "mine.csv").write_text("\n".join(["text,label", *rows]) + "\n")
    report = json.loads(_finpulse(venv_bin, work, "evaluate", "m", "--data", "mine.csv",
                                  "--json", "--no-baselines"))  # fmt: skip
    assert [(h["head"], h["model"]["n"]) for h in report["heads"]] == [("sentiment", 30)]

    _finpulse(venv_bin, work, "generate-feed", "--output", "feed.jsonl", "--items", "300",
              "--seed", "3", "--bursts", "1")  # fmt: skip
    assert len((work / "feed.jsonl").read_text().splitlines()) == 300

    summary = json.loads(_finpulse(venv_bin, work, "backtest", "--sample", "--model", "m",
                                   "--to", "2026-11-02T12:00:00Z", "--output", "bt",
                                   "--no-progress", "--no-report"))  # fmt: skip
    assert summary["scored"] == summary["items"] > 0
    assert summary["truth"]["events"] >= 1  # the packaged ground truth was found
    assert (work / "bt" / "alerts.jsonl").is_file()


def test_the_installed_wheel_carries_the_dashboard_page(venv_bin: Path, tmp_path: Path) -> None:
    """Every file ``GET /`` and ``/dashboard/*`` serve, and uPlot's licence, are installed."""
    check = (
        "import json\n"
        "from finpulse.resources import dashboard_asset\n"
        "from stream_app.service.dashboard.routes import ASSETS\n"
        "names = [name for name, _ in ASSETS.values()] + ['vendor/uplot/LICENSE']\n"
        "print(json.dumps({name: len(dashboard_asset(name)) for name in names}))\n"
    )
    done = subprocess.run(
        [str(venv_bin / "python"), "-c", check], cwd=tmp_path, env=_outside_env(),
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    sizes = json.loads(done.stdout)
    assert set(sizes) == {"index.html", "app.js", "app.css", "vendor/uplot/uPlot.iife.min.js",
                          "vendor/uplot/uPlot.min.css", "vendor/uplot/LICENSE"}  # fmt: skip
    assert all(size > 0 for size in sizes.values())
