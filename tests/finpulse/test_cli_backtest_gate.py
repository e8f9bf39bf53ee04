"""``finpulse backtest --assert`` exit codes and lines, on the tiny real model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finpulse.cli import main
from tests.stream_app.offline.test_backtest_prices import feed, prices


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["backtest", *args])
    return code, capsys.readouterr().err


@pytest.fixture
def common(tiny_model_dir: Path, tmp_path: Path) -> list[str]:
    return [str(feed(tmp_path / "f.jsonl")), "--model", str(tiny_model_dir), "--no-progress",
            "--no-report", "--cache-dir", str(tmp_path / "cache")]  # fmt: skip


def test_exit_0_when_every_condition_holds_and_1_with_the_reason_when_one_fails(
    common: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ok"
    code, err = run([*common, "--output", str(out), "--assert", "recall>=0,alerts>=0"], capsys)
    assert code == 0, err
    assert "finpulse: assertions passed: recall>=0, alerts>=0" in err
    firing = json.loads((out / "summary.json").read_text())["alerts"]["firing"]

    code, err = run([*common, "--output", str(tmp_path / "bad"), "--assert", "alerts>=1000"],
                    capsys)  # fmt: skip
    assert code == 1
    assert err.strip().splitlines()[-1] == f"finpulse: assertion failed: alerts {firing} < 1000"


def test_exit_2_before_running_for_unknown_metrics_and_missing_sources(
    common: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "never"
    code, err = run([*common, "--output", str(out), "--assert", "recal>=0.9"], capsys)
    assert code == 2
    assert "finpulse: error: --assert 'recal>=0.9': unknown metric" in err
    assert "known metrics: " in err
    assert "hit_rate_1h" in err
    code, err = run([*common, "--output", str(out), "--assert", "hit_rate_1h>=0.5"], capsys)
    assert code == 2
    assert "give --prices" in err
    code, err = run([*common, "--output", str(out), "--assert", "recall=>0.9"], capsys)
    assert code == 2
    assert not out.exists()  # nothing ran


def test_price_metrics_gate_with_a_price_file(
    common: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "p"
    code, err = run([*common, "--output", str(out), "--prices", str(prices(tmp_path / "p.csv")),
                     "--assert", "priced_alerts_1h>=0", "--bootstrap", "200"], capsys)  # fmt: skip
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["prices"]["bootstrap"]["resamples"] == 200
    assert summary["prices"]["synthetic"]
    assert (out / "returns.csv").is_file()


def test_a_bad_price_file_fails_before_the_model_runs(
    common: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("symbol,time,close\nAAA,2026-11-02T10:00Z,1\n")
    code, err = run([*common, "--output", str(tmp_path / "o"), "--prices", str(bad)], capsys)
    assert code == 2
    assert "missing column(s) ticker, timestamp, price" in err
    assert not (tmp_path / "cache").exists()
