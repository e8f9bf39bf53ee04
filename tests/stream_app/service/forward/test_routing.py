"""Routes pick sinks by severity (peak severity for resolves), kind and entity globs."""

from __future__ import annotations

from stream_app.service.forward.config import Route
from stream_app.service.forward.routing import AlertView, Router
from tests.stream_app.service.forward.alerts import alert, view

ROUTER = Router([
    Route(sinks=["am"]),
    Route(sinks=["slack", "am"], min_severity="high", kinds=["negative", "positive"]),
    Route(sinks=["hook"], entities=["ticker:*", "topic:energy-*"], exclude_entities=["ticker:SPY"]),
])  # fmt: skip


def test_every_route_that_matches_adds_its_sinks_once_in_config_order() -> None:
    assert ROUTER.sinks_for(view(severity="critical")) == ["am", "slack", "hook"]
    assert ROUTER.sinks_for(view(severity="medium")) == ["am", "hook"]
    assert ROUTER.sinks_for(view(severity="critical", kind="volume")) == ["am", "hook"]


def test_entity_globs_and_exclusions() -> None:
    assert ROUTER.sinks_for(view(entity="topic:energy-oil", severity="low")) == ["am", "hook"]
    assert ROUTER.sinks_for(view(entity="topic:fed", severity="low")) == ["am"]
    assert ROUTER.sinks_for(view(entity="ticker:SPY", severity="low")) == ["am"]
    assert ROUTER.sinks_for(view(entity="market", severity="low")) == ["am"]
    # globs are case-sensitive: entity names are canonical
    assert ROUTER.sinks_for(view(entity="Ticker:ACME", severity="low")) == ["am"]


def test_a_resolve_follows_its_peak_severity_so_it_reaches_where_the_escalation_went() -> None:
    resolved = view(state="resolved", severity="low", peak="critical")
    assert ROUTER.sinks_for(resolved) == ["am", "slack", "hook"]
    escalated = view(state="escalated", severity="high")
    assert ROUTER.sinks_for(escalated) == ["am", "slack", "hook"]


def test_alerts_without_kind_or_peak_severity_read_as_negative_with_their_own_severity() -> None:
    v = AlertView.of(alert(state="resolved", severity="medium"))
    assert v.kind == "negative"
    assert v.peak_severity == "medium"
    assert v.route_severity == "medium"
