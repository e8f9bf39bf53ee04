"""The shipped sample prices are what scripts/sample_prices.py makes of the current sample."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

from finpulse.resources import sample_feed, sample_prices, sample_truth
from stream_app.offline.prices import load_prices
from stream_app.schemas import datetime_to_ms

ROOT = Path(__file__).resolve().parents[2]


def test_committed_prices_match_the_generator_for_the_current_sample() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "sample_prices.py"), "--check"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def test_sample_prices_are_marked_synthetic_and_cover_the_truth_events() -> None:
    table = load_prices(sample_prices())
    assert "SYNTHETIC" in sample_prices().name
    assert table.synthetic
    assert table.notes[0].startswith("SYNTHETIC PRICES")
    assert not table.bad
    truth = json.loads(sample_truth().read_text(encoding="utf-8"))["events"]
    for ev in truth:
        if not ev["entity"].startswith("ticker:"):
            continue
        series = table.series[ev["entity"].removeprefix("ticker:")]
        end = datetime.fromisoformat(ev["end"].replace("Z", "+00:00"))
        assert series.first_ms <= datetime_to_ms(end) - 3_600_000
        assert series.last_ms >= datetime_to_ms(end + timedelta(days=1))
    last_item = max(
        json.loads(line)["published_at"] for line in sample_feed().open(encoding="utf-8")
    )
    last = datetime.fromisoformat(last_item.replace("Z", "+00:00"))
    assert min(s.last_ms for s in table.series.values()) >= datetime_to_ms(last + timedelta(days=1))
