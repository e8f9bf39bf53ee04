"""Hit rates, baseline and bootstrap on price series whose every return is known by hand.

UP gains 0.1 % every minute and DOWN loses 0.1 %, so any 5-minute return on UP is exactly
1.001**5 - 1 whatever the (random) time: the baseline's statistics are known in advance.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from stream_app.offline.price_metrics import PriceOptions, evaluate_prices, returns_rows
from stream_app.offline.prices import PriceSeries, PriceTable
from stream_app.schemas import datetime_to_ms

D = datetime(2026, 11, 2, tzinfo=UTC)
MINUTES = 3 * 1440
TIMES = np.array([datetime_to_ms(D) + 60_000 * k for k in range(MINUTES)], dtype=np.int64)
UP5, DOWN5 = 1.001**5 - 1, 0.999**5 - 1
UP1D, DOWN1D = 1.001**1440 - 1, 0.999**1440 - 1


def table(**extra: PriceSeries) -> PriceTable:
    k = np.arange(MINUTES)
    series = {
        "UP": PriceSeries(TIMES, 100 * 1.001**k),
        "DOWN": PriceSeries(TIMES, 100 * 0.999**k),
        **extra,
    }
    return PriceTable(source="hand-made", series=series)


@dataclass(frozen=True)
class A:
    """The fields of an Alert that are measured (``kind`` before the schema has it)."""

    alert_id: str
    entity: str
    fired_at: datetime
    kind: str = "negative"
    state: str = "firing"


def at(hours: float) -> datetime:
    return D + timedelta(hours=hours, seconds=30)


ALERTS = [
    A("a1", "ticker:DOWN", at(10)),  # negative, then down: hit
    A("a2", "ticker:UP", at(12)),  # negative, then up: miss
    A("a3", "ticker:UP", at(14), kind="positive"),  # hit
    A("a4", "ticker:DOWN", at(15), kind="volume"),
    A("a5", "ticker:NOPE", at(16)),  # no prices at all
    A("a6", "market", at(10)),  # not a ticker: out of scope
    A("a7", "ticker:DOWN", at(11), state="resolved"),  # not a new signal
]
SPAN = (D, D + timedelta(days=1))


def run(options: PriceOptions | None = None) -> dict:  # type: ignore[type-arg]
    summary, _ = evaluate_prices(ALERTS, table(), SPAN, options or PriceOptions())
    return summary


def test_counts_hit_rates_and_returns_per_kind() -> None:
    s = run()
    assert s["alerts_measured"] == 5
    assert s["alerts_out_of_scope"] == 1
    neg = s["groups"]["negative"]["5m"]
    assert (neg["alerts"], neg["priced"], neg["missing"]) == (3, 2, 1)
    assert neg["hit_rate"] == 0.5
    assert neg["mean_return"] == pytest.approx((UP5 + DOWN5) / 2)
    assert neg["median_return"] == pytest.approx((UP5 + DOWN5) / 2)
    assert s["groups"]["negative"]["1d"]["mean_return"] == pytest.approx((UP1D + DOWN1D) / 2)
    pos = s["groups"]["positive"]["1h"]
    assert pos["hit_rate"] == 1.0
    assert pos["mean_return"] == pytest.approx(1.001**60 - 1)
    vol = s["groups"]["volume"]["5m"]
    assert vol["hit_rate"] is None  # no direction
    assert vol["mean_abs_return"] == pytest.approx(-DOWN5)
    pooled = s["groups"]["directional"]["5m"]
    assert (pooled["alerts"], pooled["priced"]) == (4, 3)
    assert pooled["hit_rate"] == pytest.approx(2 / 3)


def test_baseline_draws_same_tickers_and_scores_them_with_the_alerts_direction() -> None:
    s = run(PriceOptions(baseline_draws=50))
    neg = s["groups"]["negative"]["5m"]["baseline"]
    assert neg["draws"] == 100  # 50 on DOWN + 50 on UP; NOPE has no prices to draw from
    assert neg["hit_rate"] == 0.5  # every DOWN draw falls, every UP draw rises
    assert neg["mean_return"] == pytest.approx((UP5 + DOWN5) / 2)
    pooled = s["groups"]["directional"]["5m"]
    assert pooled["baseline"]["hit_rate"] == pytest.approx(2 / 3)
    assert pooled["edge"]["hit_rate"] == pytest.approx(0.0)
    assert s["groups"]["positive"]["1d"]["baseline"]["mean_return"] == pytest.approx(UP1D)


def test_bootstrap_intervals_match_the_resampling_distribution() -> None:
    s = run()
    neg = s["groups"]["negative"]["5m"]
    # hits {1, 0}: a resampled hit rate is 0, 0.5 or 1 with p = 1/4, 1/2, 1/4, so the
    # 2.5 % and 97.5 % quantiles are 0 and 1
    assert neg["hit_rate_ci"] == [0.0, 1.0]
    lo, hi = neg["mean_return_ci"]
    assert lo == pytest.approx(DOWN5)
    assert hi == pytest.approx(UP5)
    # one alert: every resample is that alert
    pos = s["groups"]["positive"]["5m"]
    assert pos["hit_rate_ci"] == [1.0, 1.0]
    assert pos["mean_return_ci"] == pytest.approx([UP5, UP5])
    assert s["bootstrap"] == {"resamples": 2000, "confidence": 0.95, "method": "percentile",
                              "seed": 0}  # fmt: skip


def test_missing_prices_are_reported_per_alert_and_horizon() -> None:
    s = run()
    missing = s["missing"]
    assert missing["count"] == 3
    assert missing["by_reason"] == {"no_prices_for_ticker": 3}
    assert missing["tickers_without_prices"] == ["NOPE"]
    assert {(m["alert_id"], m["horizon"]) for m in missing["first"]} == {
        ("a5", "5m"), ("a5", "1h"), ("a5", "1d"),
    }  # fmt: skip


def test_seeded_runs_repeat_and_another_seed_draws_other_times() -> None:
    rng = np.random.default_rng(1)
    walk = PriceSeries(TIMES, 100 * np.exp(np.cumsum(rng.normal(0, 0.001, MINUTES))))
    alerts = [A(f"w{i}", "ticker:WALK", at(2 + i)) for i in range(6)]
    one = evaluate_prices(alerts, table(WALK=walk), SPAN, PriceOptions())[0]
    two = evaluate_prices(alerts, table(WALK=walk), SPAN, PriceOptions())[0]
    other = evaluate_prices(alerts, table(WALK=walk), SPAN, PriceOptions(seed=1))[0]
    assert one == two
    g1, g2 = one["groups"]["negative"]["1h"], other["groups"]["negative"]["1h"]
    assert g1["mean_return"] == g2["mean_return"]  # the alerts themselves do not change
    assert g1["baseline"]["mean_return"] != g2["baseline"]["mean_return"]


def test_returns_rows_have_one_row_per_alert_and_horizon() -> None:
    _, measured = evaluate_prices(ALERTS, table(), SPAN, PriceOptions())
    rows = returns_rows(measured)
    assert len(rows) == 5 * 3
    first = rows[0]
    assert first[:5] == ["a1", "ticker:DOWN", "negative", at(10).isoformat(), "5m"]
    assert float(first[9]) == pytest.approx(DOWN5, rel=1e-5)
    assert first[10] == 1  # a hit
    assert rows[-1][-1] == "no_prices_for_ticker"
