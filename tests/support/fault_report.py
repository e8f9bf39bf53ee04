"""Appends one measured row per fault test to runs/reliability/results.jsonl (git-ignored).

docs/reliability.md is written from these rows; printing them also puts them in the
pytest output (-s or -rA).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parents[2] / "runs" / "reliability" / "results.jsonl"


def record(fault: str, conservation: Any, recovery_s: float | None, **extra: Any) -> None:
    row = {
        "fault": fault,
        "at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        **(conservation.row() if conservation is not None else {}),
        "recovery_s": None if recovery_s is None else round(recovery_s, 2),
        **extra,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(row) + "\n")
    print("RELIABILITY", json.dumps(row))
