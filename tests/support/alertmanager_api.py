"""The shape Alertmanager's ``POST /api/v2/alerts`` accepts, as a checker for sink tests.

From Alertmanager's OpenAPI spec (api/v2/openapi.yaml: ``postableAlerts`` is an array of
``postableAlert`` = ``startsAt``/``endsAt`` date-time, ``annotations`` labelSet, plus
``alert`` = required ``labels`` labelSet and ``generatorURL`` uri; a labelSet maps strings
to strings) and the checks Alertmanager makes on receipt (label names match
``[a-zA-Z_][a-zA-Z0-9_]*`` in the classic validation scheme, at least one label, an end
time not before the start time).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

__all__ = ["parse_time", "postable_alert_problems"]

_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_KEYS = {"labels", "annotations", "startsAt", "endsAt", "generatorURL"}
_RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _label_set(value: Any, where: str, names: bool) -> list[str]:
    if not isinstance(value, dict):
        return [f"{where}: not an object"]
    out = []
    for k, v in value.items():
        if not isinstance(k, str) or not isinstance(v, str):
            out.append(f"{where}.{k}: keys and values must be strings")
        elif names and not _LABEL.match(k):
            out.append(f"{where}.{k}: invalid label name")
    return out


def postable_alert_problems(doc: Any) -> list[str]:
    """Everything wrong with a request body for ``POST /api/v2/alerts`` (empty: valid)."""
    if not isinstance(doc, list):
        return ["body: not an array"]
    problems: list[str] = []
    for i, alert in enumerate(doc):
        where = f"[{i}]"
        if not isinstance(alert, dict):
            problems.append(f"{where}: not an object")
            continue
        problems += [f"{where}.{k}: unknown field" for k in set(alert) - _KEYS]
        if "labels" not in alert:
            problems.append(f"{where}.labels: required")
        else:
            problems += _label_set(alert["labels"], f"{where}.labels", names=True)
            if not alert["labels"]:
                problems.append(f"{where}.labels: at least one label")
        if "annotations" in alert:
            problems += _label_set(alert["annotations"], f"{where}.annotations", names=False)
        times = {}
        for key in ("startsAt", "endsAt"):
            if key in alert:
                if not isinstance(alert[key], str) or not _RFC3339.match(alert[key]):
                    problems.append(f"{where}.{key}: not an RFC 3339 date-time")
                else:
                    times[key] = parse_time(alert[key])
        if len(times) == 2 and times["endsAt"] < times["startsAt"]:
            problems.append(f"{where}: endsAt before startsAt")
        if "generatorURL" in alert:
            url = urlsplit(str(alert["generatorURL"]))
            if not url.scheme or not url.netloc:
                problems.append(f"{where}.generatorURL: not an absolute URI")
    return problems
