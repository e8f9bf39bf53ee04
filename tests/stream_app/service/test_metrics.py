"""Prometheus exposition: per-instance registries, labelled counters, lag sampled at scrape."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from stream_app.service.metrics import Metrics


def _samples(m: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(m.render().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_two_instances_do_not_share_series() -> None:
    a, b = Metrics(), Metrics()
    a.records_in.inc(3)
    assert _samples(a)[("finpulse_records_in_total", ())] == 3
    assert _samples(b)[("finpulse_records_in_total", ())] == 0


def test_dead_letters_are_counted_per_reason() -> None:
    m = Metrics()
    m.dead_lettered(["invalid_json", "late_event", "invalid_json"])
    s = _samples(m)
    assert s[("finpulse_dead_letters_total", (("reason", "invalid_json"),))] == 2
    assert s[("finpulse_dead_letters_total", (("reason", "late_event"),))] == 1


def test_histograms_count_observations() -> None:
    m = Metrics()
    for size in (1, 5, 64):
        m.batch_size.labels(agent="score").observe(size)
    m.publish_to_scored_seconds.observe(0.3)
    s = _samples(m)
    assert s[("finpulse_batch_size_count", (("agent", "score"),))] == 3
    assert s[("finpulse_batch_size_sum", (("agent", "score"),))] == 70
    assert s[("finpulse_publish_to_scored_seconds_count", ())] == 1


def test_consumer_lag_is_read_at_scrape_and_stale_partitions_dropped() -> None:
    lags = {("news", 0): 5, ("news", 1): 0}
    m = Metrics()
    m.set_lag_reader(lambda: dict(lags))
    s = _samples(m)
    assert s[("finpulse_consumer_lag", (("partition", "0"), ("topic", "news")))] == 5
    del lags[("news", 0)]
    lags[("news", 1)] = 2
    s = _samples(m)
    assert ("finpulse_consumer_lag", (("partition", "0"), ("topic", "news"))) not in s
    assert s[("finpulse_consumer_lag", (("partition", "1"), ("topic", "news")))] == 2


def test_a_failing_lag_reader_does_not_break_the_scrape() -> None:
    def broken() -> dict[tuple[str, int], int]:
        raise RuntimeError("rebalancing")

    m = Metrics()
    m.set_lag_reader(broken)
    assert b"finpulse_records_in_total" in m.render()
