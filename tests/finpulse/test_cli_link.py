"""``finpulse link`` and the worker's alias file, through real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def finpulse(args: list[str], stdin: bytes = b"", **env: str) -> subprocess.CompletedProcess[bytes]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("FINPULSE_")}
    full_env.update(PYTHONPATH=str(ROOT), **env)
    return subprocess.run(
        [sys.executable, "-m", "finpulse", *args],
        input=stdin,
        capture_output=True,
        env=full_env,
        timeout=120,
        check=False,
    )


def test_link_json_prints_one_result_per_input_line(tmp_path: Path) -> None:
    lines = [
        b"Tesla recalls 2 million vehicles over Autopilot",
        b"$AAPL Apple and Google face EU probe",
        b"\xff\xfe not UTF-8",
        b"",
        "Fed’s Powell says rates stay high".encode(),
        b"x" * (1 << 20) + b"y" * 10,  # over MAX_LINE_BYTES
        b"Acme Widgets beats estimates",
    ]
    user = tmp_path / "desk.csv"
    user.write_text("alias,ticker\nAcme Widgets,ACME\n", encoding="utf-8")
    proc = finpulse(["link", "--json"], b"\n".join(lines) + b"\n", FINPULSE_ALIASES_FILE=str(user))
    assert proc.returncode == 0, proc.stderr.decode()
    out = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert len(out) == len(lines)
    assert out[0]["entities"] == [
        {"entity": "ticker:TSLA", "via": "name", "span": [0, 5], "relevance": 1.0}
    ]
    assert [(e["entity"], e["via"], e["span"]) for e in out[1]["entities"]] == [
        ("ticker:AAPL", "cashtag", [0, 5]),
        ("ticker:GOOGL", "name", [16, 22]),
    ]
    assert out[2] == {"text": None, "error": "not UTF-8 (byte 0xff at offset 0)", "entities": []}
    assert out[3] == {"text": "", "entities": []}
    assert out[4]["entities"] == []
    assert out[5]["text"] is None
    assert "longer than" in out[5]["error"]
    assert [e["entity"] for e in out[6]["entities"]] == ["ticker:ACME"]


def test_link_plain_output_and_max() -> None:
    proc = finpulse(["link", "--max", "1"], b"Apple and Microsoft rally\n\xff\n")
    assert proc.returncode == 0, proc.stderr.decode()
    first, second = proc.stdout.decode().splitlines()
    assert first == "ticker:AAPL (name 'Apple' 1.00)\tApple and Microsoft rally"
    assert second.startswith("error: not UTF-8")


def test_bad_alias_file_is_one_error_line_for_link_and_worker(tmp_path: Path) -> None:
    bad = tmp_path / "aliases.csv"
    bad.write_text("alias,ticker\nAcme,ACME\nBroken row without ticker\n", encoding="utf-8")
    link = finpulse(["link"], b"Acme\n", FINPULSE_ALIASES_FILE=str(bad))
    assert link.returncode == 2
    assert link.stderr.decode().strip() == (
        f"finpulse: error: {bad}:3: expected 2 columns alias,ticker, got 1"
    )
    # The worker refuses to start before touching the model or the broker.
    worker = finpulse(
        ["worker", "--model", str(tmp_path / "no-model")],
        FINPULSE_ALIASES_FILE=str(bad),
        FINPULSE_BROKER="kafka://127.0.0.1:9",
    )
    assert worker.returncode == 2
    assert f"finpulse: error: {bad}:3:" in worker.stderr.decode()
    assert "Traceback" not in worker.stderr.decode()
