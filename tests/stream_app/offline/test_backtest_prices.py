"""A backtest with a price file: returns after a known burst, outputs, report and the gate.

The feed has a burst of 'crash' news for $AAA at 12:00 (the keyword predictor makes it
negative); AAA's price is 100 until 12:00 and then falls 1 % a minute for ten minutes, so
the return after the alert is worked out here from the same price function.
"""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from stream_app.config import Settings
from stream_app.offline.backtest import backtest
from stream_app.offline.gate import GateError, parse_conditions
from stream_app.schemas import Alert
from tests.stream_app.offline.test_backtest import KeywordPredictor
from tests.support.stories import story

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
BURST = T0 + timedelta(hours=3)


def price(t: datetime) -> float:
    minutes = max(0, int((t - BURST).total_seconds() // 60))
    return 100 * 0.99 ** min(minutes, 10)


def feed(path: Path) -> Path:
    rows = [
        {
            "id": f"q{i}",
            "headline": story(1000 + i, "$AAA steady"),
            "published_at": (T0 + timedelta(minutes=i)).isoformat(),
        }
        for i in range(180)
    ]
    rows += [
        {
            "id": f"b{i}",
            "headline": story(i, "$AAA crash"),
            "event_id": "crash",
            "published_at": (BURST + timedelta(seconds=30 * i)).isoformat(),
        }
        for i in range(12)
    ]
    rows += [{"id": f"a{i}", "headline": story(2000 + i, "$AAA calm"),
              "published_at": (BURST + timedelta(minutes=10 + i)).isoformat()}
             for i in range(60)]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def prices(path: Path) -> Path:
    lines = ["# synthetic test prices", "ticker,timestamp,price"]
    t = T0 - timedelta(hours=1)
    while t <= BURST + timedelta(days=1, hours=2):
        lines.append(f"AAA,{t.isoformat()},{price(t)!r}")
        t += timedelta(minutes=1)
    path.write_text("\n".join(lines) + "\n")
    return path


def floor_minute(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


def test_returns_after_the_burst_alert_and_every_output(tmp_path: Path) -> None:
    out = tmp_path / "out"
    conditions = parse_conditions(["hit_rate_1h>=1,recall>=1", "mean_return_1h_negative>0"])
    summary = backtest(
        feed(tmp_path / "f.jsonl"), Settings(), out, progress=False,  # type: ignore[call-arg]
        predictor=KeywordPredictor(), prices_path=prices(tmp_path / "p.csv"),
        assertions=conditions,
    )  # fmt: skip
    alerts = [Alert.model_validate_json(line) for line in (out / "alerts.jsonl").open()]
    fired = [a for a in alerts if a.state == "firing" and a.entity == "ticker:AAA"]
    assert len(fired) == 1
    t = fired[0].fired_at
    entry = price(floor_minute(t))
    p = summary["prices"]
    assert p["synthetic"]
    assert p["alerts_measured"] == 1
    assert p["alerts_out_of_scope"] == len([a for a in alerts if a.state == "firing"]) - 1
    neg = p["groups"]["negative"]
    for horizon, delta in (("5m", timedelta(minutes=5)), ("1h", timedelta(hours=1)),
                           ("1d", timedelta(days=1))):  # fmt: skip
        expected = price(floor_minute(t + delta)) / entry - 1
        assert neg[horizon]["mean_return"] == pytest.approx(expected), horizon
        assert neg[horizon]["hit_rate"] == 1.0
    assert p["missing"]["count"] == 0

    with (out / "returns.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["horizon"] for r in rows] == ["5m", "1h", "1d"]
    assert rows[1]["entry_time"] == floor_minute(t).isoformat()
    assert float(rows[1]["return"]) == pytest.approx(0.99**10 / (entry / 100) - 1, rel=1e-5)

    gate = summary["assertions"]
    assert gate["passed"] is False
    assert [c["ok"] for c in gate["conditions"]] == [True, True, False]
    assert gate["conditions"][2]["reason"].startswith("mean_return_1h_negative -0.")
    assert json.loads((out / "summary.json").read_text())["assertions"] == gate

    html = (out / "report.html").read_text()
    assert "SYNTHETIC PRICES" in html
    assert "Against prices" in html
    assert (out / "charts" / "prices-hit-rate.png").is_file()
    assert (out / "charts" / "prices-returns.png").is_file()


def test_a_gate_on_truth_without_truth_still_writes_the_outputs(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    rows = [json.loads(line) for line in feed(tmp_path / "g.jsonl").open()]
    path.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "event_id"}) + "\n"
                            for r in rows))  # fmt: skip
    settings = Settings()  # type: ignore[call-arg]
    with pytest.raises(GateError, match="needs ground truth"):
        backtest(
            path, settings, tmp_path / "out", progress=False, report=False,
            predictor=KeywordPredictor(), assertions=parse_conditions(["recall>=0.9"]),
        )  # fmt: skip
    written = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert "needs ground truth" in written["assertions"]["error"]
