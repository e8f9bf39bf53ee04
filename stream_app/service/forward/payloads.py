"""What each sink is sent (pure): webhook JSON and its signature, Slack text, Alertmanager alerts.

**Webhook**: ``POST`` of a JSON envelope ``{"type": "finpulse.alert", "alert_id", "state",
"entity", "kind", "severity", "dashboard_url", "alert": <the alert exactly as on the
topic>}``. The body is the same bytes on every attempt, so a receiver can de-duplicate on
``alert_id`` (also in ``Idempotency-Key``) and check ``X-Finpulse-Signature:
sha256=<hex HMAC-SHA256 of the raw body with the shared secret>``. Attempt number and retry
reason travel in headers only (``delivery_headers``).

**Slack** (and Slack-compatible incoming webhooks: Mattermost, Rocket.Chat): ``{"text":
...}`` in Slack mrkdwn: state, kind, entity and severity on the first line, counts, share
against baseline and z on the second, the top evidence headlines quoted, and a link to the
dashboard. ``&``, ``<`` and ``>`` in headlines are escaped as Slack requires.

**Alertmanager** (``POST /api/v2/alerts``, an array of postable alerts): labels
``alertname`` (per kind: ``FinpulseNegativeSentiment`` ...), ``entity``, ``kind``,
``severity`` plus a sink's static labels; annotations ``summary``, ``description``,
``evidence``, ``dashboard``, ``alert_id``, ``episode``. Labels identify an alert in
Alertmanager, so severity being a label means an escalation is a new Alertmanager alert:
``am_transition`` ends the superseded one (``endsAt`` = now) in the same request. While
firing, ``endsAt`` = now + 4 x the re-send interval (Prometheus does the same), so a
forwarder that stops re-sending lets the alert resolve instead of hanging until
Alertmanager's ``resolve_timeout``; the resolve sets ``endsAt`` to the resolving event's
time. Times are event times clamped to now (a future ``startsAt`` or ``endsAt`` would
delay the effect), and ``endsAt`` is never before ``startsAt`` (Alertmanager rejects it).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict

from stream_app.service.forward.routing import AlertView

__all__ = [
    "ActiveAlert",
    "alertname",
    "am_labels",
    "am_transition",
    "dashboard_link",
    "delivery_headers",
    "rfc3339",
    "sign",
    "slack_message",
    "webhook_body",
]

SIGNATURE_HEADER: Final = "X-Finpulse-Signature"
ATTEMPT_HEADER: Final = "X-Finpulse-Attempt"
REASON_HEADER: Final = "X-Finpulse-Retry-Reason"
ALERT_ID_HEADER: Final = "X-Finpulse-Alert-Id"
_ALERTNAMES: Final = {
    "negative": "FinpulseNegativeSentiment",
    "positive": "FinpulsePositiveSentiment",
    "volume": "FinpulseNewsVolume",
    "model_drift": "FinpulseModelDrift",
}
_EMOJI: Final = {"firing": ":red_circle:", "escalated": ":arrow_double_up:",
                 "resolved": ":white_check_mark:"}  # fmt: skip


def rfc3339(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def dashboard_link(template: str | None, view: AlertView) -> str | None:
    """The dashboard URL with ``{entity}`` and ``{alert_id}`` filled in (URL-encoded)."""
    if not template:
        return None
    return template.replace("{entity}", quote(view.entity, safe="")).replace(
        "{alert_id}", quote(view.alert_id, safe="")
    )


# --- webhook ------------------------------------------------------------------------------


def webhook_body(view: AlertView, alert: dict[str, Any], link: str | None) -> bytes:
    doc = {
        "type": "finpulse.alert",
        "alert_id": view.alert_id,
        "state": view.state,
        "entity": view.entity,
        "kind": view.kind,
        "severity": view.severity,
        "dashboard_url": link,
        "alert": alert,
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def sign(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def delivery_headers(alert_id: str, attempt: int, reason: str | None) -> dict[str, str]:
    """Per-attempt headers of every sink: ids for de-duplication, attempt and its reason."""
    headers = {ALERT_ID_HEADER: alert_id, "Idempotency-Key": alert_id, ATTEMPT_HEADER: str(attempt)}
    if reason:
        headers[REASON_HEADER] = reason[:200].replace("\r", " ").replace("\n", " ")
    return headers


# --- Slack --------------------------------------------------------------------------------


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _headline(view: AlertView) -> str:
    sev = view.severity
    if view.state == "resolved":
        sev = f"peak severity *{view.peak_severity}*"
    elif view.state == "escalated":
        sev = f"severity now *{view.severity}*"
    else:
        sev = f"severity *{sev}*"
    return (
        f"{_EMOJI.get(view.state, ':grey_question:')} *{view.state.upper()}* {view.kind} alert "
        f"for *{_slack_escape(view.entity)}*: {sev}"
    )


def _stats_line(view: AlertView) -> str:
    when = view.fired_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    if view.expected is not None:  # volume: stories against what the baseline expects
        counts = f"{view.count} stories in window vs {view.expected:.1f} expected"
    else:
        counts = (f"{view.count}/{view.total} {view.kind} in window ({view.share:.0%}) vs "
                  f"baseline {view.baseline_share:.0%}")  # fmt: skip
    return (
        f"{counts} · z={view.score:.1f} (threshold {view.threshold:g}) · "
        f"episode {view.episode} · {when}"
    )


def slack_message(view: AlertView, link: str | None, evidence: int = 3) -> dict[str, Any]:
    lines = [_headline(view), _stats_line(view)]
    if view.state != "resolved":
        for e in view.evidence[:evidence]:
            prob = f" (p={e.prob:.2f})" if e.prob is not None else ""
            lines.append(f"> {_slack_escape(e.headline[:200])}{prob}")
    if link:
        lines.append(f"<{link}|Open {_slack_escape(view.entity)} in the dashboard>")
    return {"text": "\n".join(lines)}


# --- Alertmanager -------------------------------------------------------------------------


def alertname(kind: str) -> str:
    return _ALERTNAMES.get(kind) or "Finpulse" + "".join(p.title() for p in kind.split("_"))


def am_labels(view: AlertView, severity: str, extra: dict[str, str]) -> dict[str, str]:
    return {**extra, "alertname": alertname(view.kind), "entity": view.entity,
            "kind": view.kind, "severity": severity}  # fmt: skip


def _annotations(view: AlertView, link: str | None) -> dict[str, str]:
    verb = {"firing": "fired", "escalated": "escalated", "resolved": "resolved"}
    out = {
        "summary": f"{view.kind} news alert for {view.entity} {verb.get(view.state, view.state)}"
        f" ({view.route_severity})",
        "description": _stats_line(view) + f" · model {view.model_version}",
        "evidence": "\n".join(e.headline[:300] for e in view.evidence[:5]),
        "alert_id": view.alert_id,
        "episode": str(view.episode),
    }
    if link:
        out["dashboard"] = link
    return out


class ActiveAlert(BaseModel):
    """An Alertmanager alert this forwarder keeps firing (stored in Redis for re-sends)."""

    model_config = ConfigDict(frozen=True)

    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    generator_url: str | None = None
    alert_id: str
    partition: int | None = None

    def postable(self, ends_at: datetime) -> dict[str, Any]:
        """The v2 ``postableAlert`` for this alert ending at ``ends_at``."""
        doc: dict[str, Any] = {
            "labels": self.labels,
            "annotations": self.annotations,
            "startsAt": rfc3339(self.starts_at),
            "endsAt": rfc3339(max(ends_at, self.starts_at)),
        }
        if self.generator_url:
            doc["generatorURL"] = self.generator_url
        return doc


def am_transition(
    active: ActiveAlert | None, view: AlertView, *, now: datetime, resend_seconds: float,
    link: str | None, extra_labels: dict[str, str], partition: int | None = None,
) -> tuple[list[dict[str, Any]], ActiveAlert | None]:  # fmt: skip
    """What to post for ``view`` given the alert already firing for its entity and kind.

    Returns the postable alerts and what is firing afterwards (None after a resolve).
    """
    if view.state == "resolved":
        if active is None:  # the firing was not routed here, or its record expired
            labels = am_labels(view, view.peak_severity, extra_labels)
            active = ActiveAlert(labels=labels, annotations={}, alert_id=view.alert_id,
                                 starts_at=min(view.episode_start, now),
                                 generator_url=link)  # fmt: skip
        ended = active.model_copy(update={"annotations": _annotations(view, link)})
        return [ended.postable(min(view.fired_at, now))], None
    labels = am_labels(view, view.severity, extra_labels)
    if active is not None and active.labels == labels:
        starts = active.starts_at  # the same Alertmanager alert (a redelivered firing)
    else:
        starts = min(view.fired_at, now)
    new = ActiveAlert(labels=labels, annotations=_annotations(view, link), starts_at=starts,
                      generator_url=link, alert_id=view.alert_id, partition=partition)  # fmt: skip
    posts = [new.postable(now + timedelta(seconds=4 * resend_seconds))]
    if active is not None and active.labels != labels:
        superseded = dict(active.annotations)
        superseded["summary"] = (
            f"{superseded.get('summary', 'finpulse alert')}; superseded by severity {view.severity}"
        )
        posts.append(active.model_copy(update={"annotations": superseded}).postable(now))
    return posts, new


def am_key(view: AlertView) -> str:
    """Which Alertmanager alert of this sink an alert updates: one per entity and kind."""
    return f"{view.entity}\x1f{view.kind}"
