"""The forwarder's sinks and routes: a YAML or TOML file, or ``FINPULSE_FORWARD_*`` alone.

A routes file (``FINPULSE_FORWARD_CONFIG`` or ``--config``)::

    dashboard_url: "http://desk:6066/?entity={entity}&alert_id={alert_id}"   # optional
    retry: {max_attempts: 6, backoff_seconds: 2, backoff_max_seconds: 120, timeout_seconds: 10}
    sinks:
      desk-hook:   {type: webhook, url_env: DESK_HOOK_URL, secret_env: DESK_HOOK_SECRET}
      slack-desk:  {type: slack, url_env: SLACK_WEBHOOK_URL, evidence: 3}
      am:          {type: alertmanager, url: "http://alertmanager:9093", resend_seconds: 60,
                    labels: {team: desk}}
    routes:
      - {sinks: [am]}                                        # everything
      - {sinks: [slack-desk], min_severity: medium, kinds: [negative, positive]}
      - {sinks: [desk-hook], entities: ["ticker:*"], exclude_entities: ["ticker:SPY"]}

Every key is validated (unknown keys too); an error names the file and the key path
(``routes.1.min_severity: ...``) and never echoes a URL or a secret. A sink's URL is
``url`` or, to keep tokens out of the file, ``url_env`` (the name of an environment
variable); a webhook's HMAC key is ``secret_env`` or ``FINPULSE_FORWARD_HMAC_SECRET``, and
a webhook without one is an error. Without a routes file, ``FINPULSE_FORWARD_WEBHOOK_URL``,
``_SLACK_URL`` and ``_ALERTMANAGER_URL`` each make one sink (named ``webhook``, ``slack``,
``alertmanager``) with a route for every alert at ``FINPULSE_FORWARD_MIN_SEVERITY`` or above.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from models.errors import FinpulseError
from stream_app.config import ForwardSettings
from stream_app.service.forward.retry import RetryPolicy

__all__ = [
    "ALERT_KINDS",
    "ForwardConfig",
    "ForwardConfigError",
    "ForwardPlan",
    "SinkSpec",
    "load_plan",
    "masked_url",
    "resolve",
]

ALERT_KINDS: Final = ("negative", "positive", "volume", "model_drift")
Severity = Literal["low", "medium", "high", "critical"]
AlertKind = Literal["negative", "positive", "volume", "model_drift"]
SinkName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
LABEL_NAME: Final = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
RESERVED_LABELS: Final = frozenset({"alertname", "entity", "kind", "severity"})


class ForwardConfigError(FinpulseError):
    """A routes file or ``FINPULSE_FORWARD_*`` setting that cannot be used."""


def masked_url(url: str) -> str:
    """``scheme://host[:port]/…``: what logs may show of a URL (paths and queries hold tokens)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    rest = "/…" if (parts.path not in ("", "/") or parts.query) else ""
    return f"{parts.scheme}://{host}{port}{rest}"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Sink(_Strict):
    url: SecretStr | None = None
    url_env: str | None = None
    timeout_seconds: float | None = Field(None, gt=0, le=300)

    @model_validator(mode="after")
    def _one_url(self) -> _Sink:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("give exactly one of url and url_env")
        return self


class WebhookSink(_Sink):
    type: Literal["webhook"]
    secret_env: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)


class SlackSink(_Sink):
    type: Literal["slack"]
    evidence: int = Field(3, ge=0, le=10)


class AlertmanagerSink(_Sink):
    type: Literal["alertmanager"]
    resend_seconds: float | None = Field(None, gt=0, le=3600)
    labels: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _labels(self) -> AlertmanagerSink:
        for name in self.labels:
            if not LABEL_NAME.match(name) or name in RESERVED_LABELS:
                raise ValueError(
                    f"label {name!r}: must match {LABEL_NAME.pattern} and not be one of "
                    f"{', '.join(sorted(RESERVED_LABELS))}"
                )
        return self


Sink = Annotated[WebhookSink | SlackSink | AlertmanagerSink, Field(discriminator="type")]


class Route(_Strict):
    sinks: list[SinkName] = Field(min_length=1)
    min_severity: Severity = "low"
    kinds: list[AlertKind] | None = None
    entities: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    exclude_entities: list[str] = Field(default_factory=list)


class RetryConfig(_Strict):
    max_attempts: int | None = Field(None, ge=1, le=100)
    backoff_seconds: float | None = Field(None, gt=0, le=3600)
    backoff_max_seconds: float | None = Field(None, gt=0, le=3600)
    timeout_seconds: float | None = Field(None, gt=0, le=300)


class ForwardConfig(_Strict):
    sinks: dict[SinkName, Sink] = Field(min_length=1)
    routes: list[Route] = Field(min_length=1)
    retry: RetryConfig = RetryConfig()  # type: ignore[call-arg]  # mypy misreads Field(None, ...)
    dashboard_url: str | None = None

    @model_validator(mode="after")
    def _known_sinks(self) -> ForwardConfig:
        for i, route in enumerate(self.routes):
            for name in route.sinks:
                if name not in self.sinks:
                    known = ", ".join(sorted(self.sinks))
                    raise ValueError(f"routes.{i}.sinks: unknown sink {name!r} (known: {known})")
        return self


@dataclass(frozen=True)
class SinkSpec:
    """A sink ready to use: its URL and secret resolved (both secret: log ``masked``)."""

    name: str
    type: str
    url: str = field(repr=False)
    timeout_seconds: float
    secret: bytes | None = field(default=None, repr=False)
    headers: dict[str, str] = field(default_factory=dict)
    evidence: int = 3
    resend_seconds: float = 60.0
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def masked(self) -> str:
        return masked_url(self.url)


@dataclass(frozen=True)
class ForwardPlan:
    sinks: dict[str, SinkSpec]
    routes: list[Route]
    retry: RetryPolicy
    dashboard_url: str | None
    source: str  # the file, or "environment"

    def describe(self) -> list[str]:
        """Lines for ``--check`` and the start-up log: sinks (masked) and routes."""
        lines = [f"forward config from {self.source}"]
        lines += [f"  sink {s.name}: {s.type} {s.masked}" for s in self.sinks.values()]
        for i, r in enumerate(self.routes):
            kinds = ",".join(r.kinds) if r.kinds else "any kind"
            ents = ",".join(r.entities) + (f" except {','.join(r.exclude_entities)}"
                                           if r.exclude_entities else "")  # fmt: skip
            lines.append(f"  route {i}: {kinds}, >= {r.min_severity}, {ents} -> "
                         f"{', '.join(r.sinks)}")  # fmt: skip
        p = self.retry
        lines.append(f"  retry: {p.max_attempts} attempts, back-off {p.backoff_seconds:g}.."
                     f"{p.backoff_max_seconds:g} s, timeout {p.timeout_seconds:g} s")  # fmt: skip
        return lines


def _validation_message(where: str, exc: ValidationError) -> str:
    problems = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        # a discriminated union puts the sink type in the path: sinks.x.webhook.url -> sinks.x.url
        loc = re.sub(r"^(sinks\.[^.]+)\.(webhook|slack|alertmanager)\b", r"\1", loc)
        problems.append(
            f"{loc}: {msg}" if loc and not msg.startswith(("routes.", "sinks.")) else msg
        )
    return f"{where}: " + "; ".join(problems)


def _parser(suffix: str) -> tuple[str, Any, type[Exception]] | None:
    """(format name, loads, its error type) for a file suffix; YAML is imported lazily."""
    if suffix == ".toml":
        return "TOML", tomllib.loads, tomllib.TOMLDecodeError
    if suffix == ".json":
        return "JSON", json.loads, json.JSONDecodeError
    if suffix in (".yaml", ".yml"):
        import yaml

        return "YAML", yaml.safe_load, yaml.YAMLError
    return None


def _read(path: Path) -> Any:
    parser = _parser(path.suffix.lower())
    if parser is None:
        raise ForwardConfigError(f"{path}: unknown config format (use .yaml, .yml, .toml or .json)")
    name, loads, error = parser
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ForwardConfigError(f"cannot read forward config {path}: {exc}") from None
    try:
        return loads(text)
    except error as exc:
        raise ForwardConfigError(f"{path}: invalid {name}: {exc}") from None


def _from_env(settings: ForwardSettings) -> ForwardConfig:
    sinks: dict[str, Any] = {}
    if settings.webhook_url is not None:
        sinks["webhook"] = {"type": "webhook", "url": settings.webhook_url}
    if settings.slack_url is not None:
        sinks["slack"] = {"type": "slack", "url": settings.slack_url}
    if settings.alertmanager_url is not None:
        sinks["alertmanager"] = {"type": "alertmanager", "url": settings.alertmanager_url}
    if not sinks:
        raise ForwardConfigError(
            "no sinks: set FINPULSE_FORWARD_CONFIG (a routes file) or at least one of "
            "FINPULSE_FORWARD_WEBHOOK_URL, FINPULSE_FORWARD_SLACK_URL, "
            "FINPULSE_FORWARD_ALERTMANAGER_URL"
        )
    routes = [{"sinks": [name], "min_severity": settings.min_severity} for name in sinks]
    try:
        return ForwardConfig.model_validate({"sinks": sinks, "routes": routes})
    except ValidationError as exc:
        raise ForwardConfigError(_validation_message("FINPULSE_FORWARD_*", exc)) from None


def _env(env: Mapping[str, str], name: str, where: str) -> str:
    value = env.get(name)
    if not value:
        raise ForwardConfigError(f"{where}: environment variable {name} is not set")
    return value


def resolve(
    config: ForwardConfig, settings: ForwardSettings, source: str,
    env: Mapping[str, str] | None = None,
) -> ForwardPlan:  # fmt: skip
    """URLs and secrets looked up, defaults filled in from ``settings``."""
    env = os.environ if env is None else env
    r = config.retry
    retry = RetryPolicy(
        max_attempts=r.max_attempts or settings.max_attempts,
        backoff_seconds=r.backoff_seconds or settings.backoff_seconds,
        backoff_max_seconds=r.backoff_max_seconds or settings.backoff_max_seconds,
        timeout_seconds=r.timeout_seconds or settings.timeout_seconds,
    )
    specs: dict[str, SinkSpec] = {}
    for name, sink in config.sinks.items():
        where = f"{source}: sinks.{name}"
        if sink.url is not None:
            url = sink.url.get_secret_value()
        else:
            url = _env(env, str(sink.url_env), f"{where}.url_env")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ForwardConfigError(f"{where}.url: must be an http(s) URL with a host "
                                     "(value not shown: it may hold a token)")  # fmt: skip
        timeout = sink.timeout_seconds or retry.timeout_seconds
        if isinstance(sink, WebhookSink):
            if sink.secret_env is not None:
                secret = _env(env, sink.secret_env, f"{where}.secret_env")
            elif settings.hmac_secret is not None:
                secret = settings.hmac_secret.get_secret_value()
            else:
                raise ForwardConfigError(
                    f"{where}: a webhook signs its body: set secret_env or "
                    "FINPULSE_FORWARD_HMAC_SECRET"
                )
            specs[name] = SinkSpec(name, "webhook", url, timeout, secret.encode(),
                                   headers=dict(sink.headers))  # fmt: skip
        elif isinstance(sink, SlackSink):
            specs[name] = SinkSpec(name, "slack", url, timeout, evidence=sink.evidence)
        else:
            resend = sink.resend_seconds or settings.resend_seconds
            specs[name] = SinkSpec(name, "alertmanager", url, timeout, resend_seconds=resend,
                                   labels=dict(sink.labels))  # fmt: skip
    return ForwardPlan(
        sinks=specs,
        routes=list(config.routes),
        retry=retry,
        dashboard_url=config.dashboard_url or settings.dashboard_url,
        source=source,
    )


def load_plan(
    settings: ForwardSettings, path: Path | None = None, env: Mapping[str, str] | None = None
) -> ForwardPlan:
    """The plan from ``path`` (or ``settings.config``), else from the env URLs."""
    path = path or settings.config
    if path is None:
        return resolve(_from_env(settings), settings, "environment", env)
    doc = _read(path)
    if not isinstance(doc, dict):
        raise ForwardConfigError(f"{path}: expected a mapping with 'sinks' and 'routes'")
    try:
        config = ForwardConfig.model_validate(doc)
    except ValidationError as exc:
        raise ForwardConfigError(_validation_message(str(path), exc)) from None
    return resolve(config, settings, str(path), env)
