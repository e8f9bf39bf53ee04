"""Webhook body and signature, Slack text, Alertmanager alerts and their bookkeeping."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import timedelta

from stream_app.service.forward.payloads import (
    ActiveAlert,
    am_transition,
    dashboard_link,
    delivery_headers,
    sign,
    slack_message,
    webhook_body,
)
from stream_app.service.forward.routing import AlertView
from tests.stream_app.service.forward.alerts import T, alert, view
from tests.support.alertmanager_api import parse_time, postable_alert_problems

LINK = "https://desk.example/?entity={entity}&id={alert_id}"
NOW = T + timedelta(seconds=20)


def test_webhook_body_wraps_the_alert_as_on_the_topic_and_the_signature_verifies() -> None:
    a = alert()
    v = AlertView.of(a)
    raw = json.loads(a.model_dump_json())
    body = webhook_body(v, raw, "https://desk/x")
    doc = json.loads(body)
    assert doc["alert"] == raw
    assert (doc["alert_id"], doc["entity"], doc["kind"], doc["state"]) == (
        a.alert_id, "ticker:ACME", "negative", "firing",
    )  # fmt: skip
    assert webhook_body(v, raw, "https://desk/x") == body  # the same bytes every attempt
    expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert sign(b"s3cret", body) == f"sha256={expected}"


def test_delivery_headers_carry_ids_attempt_and_reason() -> None:
    assert delivery_headers("abc", 1, None) == {
        "X-Finpulse-Alert-Id": "abc", "Idempotency-Key": "abc", "X-Finpulse-Attempt": "1",
    }  # fmt: skip
    again = delivery_headers("abc", 2, "http 503\r\nInjected: yes")
    assert again["X-Finpulse-Retry-Reason"] == "http 503  Injected: yes"


def test_dashboard_link_encodes_the_entity() -> None:
    v = AlertView.of(alert())
    assert dashboard_link(LINK, v) == f"https://desk.example/?entity=ticker%3AACME&id={v.alert_id}"
    assert dashboard_link(None, v) is None


def test_slack_text_is_readable_and_escaped() -> None:
    text = slack_message(AlertView.of(alert()), "https://desk/?e=1", evidence=1)["text"]
    lines = text.splitlines()
    assert lines[0] == ":red_circle: *FIRING* negative alert for *ticker:ACME*: severity *high*"
    assert lines[1].startswith(
        "9/12 negative in window (75%) vs baseline 12% · z=6.1 (threshold 3)"
    )
    assert lines[2] == "> $ACME plunges &lt;after&gt; guidance &amp; cut (p=0.97)"
    assert lines[3] == "<https://desk/?e=1|Open ticker:ACME in the dashboard>"
    assert len(lines) == 4  # evidence=1
    resolved = slack_message(view("resolved", "low", peak="critical"), None)["text"]
    assert "*RESOLVED*" in resolved
    assert "peak severity *critical*" in resolved
    assert ">" not in resolved.split("\n", 2)[-1]  # no evidence on a resolve


def test_firing_posts_labels_annotations_and_a_validity_window() -> None:
    v = view(severity="high")
    posts, active = am_transition(None, v, now=NOW, resend_seconds=60, link="https://d/x",
                                  extra_labels={"team": "desk"}, partition=2)  # fmt: skip
    assert postable_alert_problems(posts) == []
    (post,) = posts
    assert post["labels"] == {
        "team": "desk", "alertname": "FinpulseNegativeSentiment", "entity": "ticker:ACME",
        "kind": "negative", "severity": "high",
    }  # fmt: skip
    assert post["annotations"]["evidence"].splitlines()[0].startswith("$ACME plunges")
    assert post["annotations"]["dashboard"] == post["generatorURL"] == "https://d/x"
    assert parse_time(post["startsAt"]) == T
    assert parse_time(post["endsAt"]) == NOW + timedelta(seconds=240)  # 4 x re-send
    assert active is not None
    assert active.partition == 2


def test_escalation_ends_the_superseded_severity_and_the_resolve_sets_ends_at() -> None:
    fired, active = am_transition(None, view(severity="low"), now=NOW, resend_seconds=60,
                                  link=None, extra_labels={})  # fmt: skip
    later = NOW + timedelta(minutes=3)
    esc = view("escalated", "critical", at=T + timedelta(minutes=3))
    posts, active2 = am_transition(active, esc, now=later, resend_seconds=60, link=None,
                                   extra_labels={})  # fmt: skip
    assert postable_alert_problems(posts) == []
    new, old = posts
    assert new["labels"]["severity"] == "critical"
    assert parse_time(new["endsAt"]) > later
    assert old["labels"] == fired[0]["labels"]
    assert parse_time(old["endsAt"]) == later
    assert "superseded by severity critical" in old["annotations"]["summary"]

    res = view("resolved", "low", peak="critical", at=T + timedelta(minutes=20))
    (end,), after = am_transition(active2, res, now=later + timedelta(minutes=20),
                                  resend_seconds=60, link=None, extra_labels={})  # fmt: skip
    assert after is None
    assert end["labels"]["severity"] == "critical"
    assert parse_time(end["endsAt"]) == T + timedelta(minutes=20)  # the resolving event's time
    assert end["startsAt"] == new["startsAt"]
    assert "resolved" in end["annotations"]["summary"]


def test_a_resolve_without_a_firing_here_uses_its_peak_severity_and_episode_start() -> None:
    res = view("resolved", "low", peak="high", at=T + timedelta(minutes=20))
    (end,), after = am_transition(None, res, now=T + timedelta(hours=1), resend_seconds=60,
                                  link=None, extra_labels={})  # fmt: skip
    assert after is None
    assert postable_alert_problems([end]) == []
    assert end["labels"]["severity"] == "high"
    assert parse_time(end["startsAt"]) == T


def test_event_times_in_the_future_are_clamped_to_now() -> None:
    future = view(at=NOW + timedelta(hours=1))
    (post,), _ = am_transition(None, future, now=NOW, resend_seconds=60, link=None,
                               extra_labels={})  # fmt: skip
    assert parse_time(post["startsAt"]) == NOW
    res = view("resolved", "low", peak="high", at=NOW + timedelta(hours=1))
    (end,), _ = am_transition(None, res, now=NOW, resend_seconds=60, link=None, extra_labels={})
    assert parse_time(end["endsAt"]) == NOW


def test_active_alerts_survive_json_for_redis() -> None:
    _, active = am_transition(None, view(), now=NOW, resend_seconds=60, link=None,
                              extra_labels={})  # fmt: skip
    assert active is not None
    assert ActiveAlert.model_validate_json(active.model_dump_json()) == active


def test_volume_alerts_say_stories_against_expected_and_give_no_probability() -> None:
    from dataclasses import replace

    v = replace(view(kind="volume"), count=12, expected=4.0,
                evidence=tuple(replace(e, prob=None) for e in view().evidence))  # fmt: skip
    lines = slack_message(v, None)["text"].splitlines()
    assert lines[0].endswith("volume alert for *ticker:ACME*: severity *high*")
    assert lines[1].startswith("12 stories in window vs 4.0 expected · z=6.1")
    assert lines[2] == "> $ACME plunges &lt;after&gt; guidance &amp; cut"
    (post,), _ = am_transition(None, v, now=NOW, resend_seconds=60, link=None, extra_labels={})
    assert post["labels"]["alertname"] == "FinpulseNewsVolume"
