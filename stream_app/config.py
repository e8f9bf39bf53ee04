"""All runtime configuration of the stream app, read once from ``FINPULSE_*`` environment.

Bottom of the import graph: nothing here imports the app, agents or model code. Secrets
are ``SecretStr`` and the Redis URL is masked whenever it is shown, so they never reach
logs or ``/metrics``. The worker, demo, replay and backtest all take a ``Settings``.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from stream_app.schemas import DetectorKind

__all__ = [
    "DetectorSettings",
    "ForwardSettings",
    "Settings",
    "WindowSettings",
    "check_topic_name",
    "mask_url",
]

# Kafka's own rule (kafka.common.internals.Topic): these characters, 1-249 of them, and not
# "." or "..". Checked up front: a broker answers a bad name with errors, not a refusal.
_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")


def check_topic_name(name: str) -> str:
    """``name`` if Kafka accepts it as a topic name, else ``ValueError`` saying why."""
    if not _TOPIC_NAME.fullmatch(name) or name in (".", ".."):
        raise ValueError(
            f"{name!r} is not a Kafka topic name (1-249 of A-Z a-z 0-9 . _ -, not . or ..)"
        )
    return name


def mask_url(url: str) -> str:
    """The URL with any password replaced by ``***``, safe for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, parts.query, parts.fragment))


class WindowSettings(BaseSettings):
    """Event-time bucketing; every size is in seconds and must be a multiple of the bucket."""

    model_config = SettingsConfigDict(env_prefix="FINPULSE_", extra="ignore", frozen=True)

    bucket_seconds: int = Field(60, gt=0, le=3600)
    window_seconds: int = Field(900, gt=0)
    baseline_seconds: int = Field(86_400, gt=0)
    retention_seconds: int = Field(2 * 86_400, gt=0)
    allowed_lateness_seconds: int = Field(600, ge=0)
    max_future_skew_seconds: int = Field(3600, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> WindowSettings:
        b = self.bucket_seconds
        for name in ("window_seconds", "baseline_seconds", "retention_seconds"):
            if getattr(self, name) % b:
                raise ValueError(f"{name} must be a multiple of bucket_seconds ({b})")
        if not self.window_seconds < self.baseline_seconds <= self.retention_seconds:
            raise ValueError("need window_seconds < baseline_seconds <= retention_seconds")
        if self.allowed_lateness_seconds > self.retention_seconds - self.window_seconds:
            raise ValueError("allowed_lateness_seconds must leave the window inside retention")
        return self


class DetectorSettings(BaseSettings):
    """Spike detectors and their thresholds (stream_app/core/detector.py has the tests).

    ``detect`` switches the kinds on (``FINPULSE_DETECT=negative,positive,volume``). The
    negative and positive detectors share the z/share thresholds; volume compares the
    window's story count with the entity's own baseline rate (Poisson) and has its own.
    """

    model_config = SettingsConfigDict(env_prefix="FINPULSE_", extra="ignore", frozen=True)

    detect: Annotated[tuple[DetectorKind, ...], NoDecode] = ("negative",)
    min_negative_count: int = Field(5, ge=1)
    min_positive_count: int = Field(5, ge=1)
    fire_z: float = Field(3.0, gt=0)
    resolve_z: float = Field(1.0)
    share_floor: float = Field(0.35, gt=0, le=1)
    resolve_share_floor: float = Field(0.2, ge=0, le=1)
    cooldown_seconds: int = Field(900, ge=0)
    baseline_prior_share: float = Field(0.15, gt=0, lt=1)
    positive_prior_share: float = Field(0.25, gt=0, lt=1)
    baseline_prior_weight: float = Field(20.0, ge=0)
    volume_min_count: int = Field(10, ge=1)
    volume_fire_z: float = Field(4.0, gt=0)
    volume_resolve_z: float = Field(1.5)
    volume_prior_per_hour: float = Field(1.0, gt=0)
    volume_prior_hours: float = Field(6.0, gt=0)
    volume_warmup_seconds: int = Field(3600, ge=0)
    evidence_size: int = Field(5, ge=1, le=50)
    novelty_window_seconds: int = Field(86_400, ge=0)
    # ~10 keys per story: 200k keys hold ~20k stories a day per entity (the market's)
    novelty_max_keys: int = Field(200_000, ge=10, le=10_000_000)

    @field_validator("detect", mode="before")
    @classmethod
    def _kinds(cls, v: object) -> object:
        if isinstance(v, str):
            v = [k.strip() for k in v.split(",") if k.strip()]
        if isinstance(v, list | tuple) and not v:
            raise ValueError("name at least one of negative, positive, volume")
        if isinstance(v, list | tuple):
            return tuple(dict.fromkeys(v))
        return v

    @model_validator(mode="after")
    def _hysteresis(self) -> DetectorSettings:
        if self.resolve_z >= self.fire_z:
            raise ValueError("resolve_z must be below fire_z (hysteresis)")
        if self.resolve_share_floor >= self.share_floor:
            raise ValueError("resolve_share_floor must be below share_floor (hysteresis)")
        if self.volume_resolve_z >= self.volume_fire_z:
            raise ValueError("volume_resolve_z must be below volume_fire_z (hysteresis)")
        return self


SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class Settings(BaseSettings):
    """Worker configuration. Every field is ``FINPULSE_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="FINPULSE_", extra="ignore", frozen=True)

    app_id: str = "finpulse"
    broker: str = "kafka://127.0.0.1:9092"
    broker_security_protocol: SecurityProtocol = "PLAINTEXT"
    broker_sasl_mechanism: SaslMechanism = "PLAIN"
    broker_sasl_username: str | None = None
    broker_sasl_password: SecretStr | None = None
    broker_ssl_cafile: Path | None = None
    broker_ssl_certfile: Path | None = None
    broker_ssl_keyfile: Path | None = None
    broker_rebalance_timeout: float = Field(60.0, gt=0)
    broker_session_timeout: float = Field(60.0, gt=0)
    # How long replay and alerts tail wait for a broker to answer before they give up
    # (a port that accepts connections but never answers would otherwise take minutes).
    broker_connect_timeout: float = Field(15.0, gt=0, le=600)

    redis_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    redis_key_prefix: str = Field("finpulse", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    redis_retry_max_seconds: float = Field(30.0, gt=0)
    # Redis Cluster client (keys of one entity share a hash tag; see stream_app.store.client)
    redis_cluster: bool = False
    # TLS for rediss:// URLs: CA bundle to verify the server, client cert/key for mutual TLS
    redis_ssl_ca_certs: Path | None = None
    redis_ssl_certfile: Path | None = None
    redis_ssl_keyfile: Path | None = None

    topic_news: str = "news"
    topic_scored: str = "news.scored"
    topic_alerts: str = "sentiment.alerts"
    topic_deadletter: str = "news.deadletter"
    topic_entity_events: str = "finpulse.entity-events"
    # alerts a forwarder sink never acknowledged (``finpulse alerts forward``)
    topic_alerts_deadletter: str = "sentiment.alerts.deadletter"
    topic_partitions: int = Field(4, ge=1, le=1024)
    topic_replication: int = Field(1, ge=1)

    batch_size: int = Field(64, ge=1, le=4096)
    batch_max_wait: float = Field(0.25, gt=0, le=60)
    # Entity-topic records per aggregate batch (each holds one score batch's events for one
    # partition). Results do not depend on it (events are released in event-time order and
    # the detector steps per event); larger batches amortise Redis round trips.
    aggregate_batch_records: int = Field(64, ge=1, le=65_536)
    # Event-time watermarks (stream_app/core/sequencer.py): a news partition that sent no
    # record for this long counts as idle and stops holding the watermark back; one record
    # advances its partition's progress at most this far past processing time.
    watermark_idle_seconds: float = Field(5.0, gt=0, le=3600)
    clock_skew_seconds: float = Field(5.0, ge=0, le=3600)
    # Score batch N+1 while batch N is published and acknowledged (the model and the broker
    # overlap; order and at-least-once as one batch at a time). Off: one batch at a time.
    score_overlap: bool = True
    # Stopping (SIGTERM/SIGINT; stream_app/service/app.py): the batches in flight get
    # shutdown_grace_seconds to finish and be committed (then they are cut off and
    # redelivered); a stop that takes longer than shutdown_timeout_seconds in all ends the
    # process with exit code 70 and every thread's stack in the log. Keep the timeout under
    # the supervisor's kill timeout (Kubernetes: terminationGracePeriodSeconds, 30 s).
    shutdown_grace_seconds: float = Field(5.0, ge=0, le=600)
    shutdown_timeout_seconds: float = Field(20.0, gt=0, le=3600)

    max_message_bytes: int = Field(1_000_000, ge=1024)
    max_headline_chars: int = Field(1000, ge=16)
    max_body_chars: int = Field(20_000, ge=0)
    max_tickers: int = Field(32, ge=0)
    # Entity linking (issue 10; stream_app.core.linking): a CSV ``alias,ticker`` that adds
    # to / overrides the packaged alias table (a bad row stops the worker at start-up), and
    # the relevance below which a company found by *name* is not counted as an entity
    # (0 = every link counts; field tickers and cashtags always count).
    aliases_file: Path | None = None
    min_relevance: float = Field(0.0, ge=0.0, le=1.0)

    model_dir: Path = Path("artifacts/model")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # Deprecated: int8 was removed (torch.ao dynamic quantisation is deprecated and flipped
    # ~5 % of labels; bf16 is faster where the CPU has it). "on" is refused, saying so.
    quantize: Literal["auto", "on", "off"] = "auto"
    # Model monitoring (stream_app/service/model_monitor.py): PSI of the last drift_window
    # predictions against the model's reference.json, computed every drift_check_every
    # predictions; above drift_psi a model_drift alert fires, below 0.75 x it resolves.
    drift_psi: float = Field(0.2, gt=0, le=10)
    drift_window: int = Field(1000, ge=50, le=1_000_000)
    drift_check_every: int = Field(100, ge=1, le=1_000_000)

    web_host: str = "127.0.0.1"
    web_port: int = Field(6066, ge=1, le=65535)
    api_token: SecretStr | None = None
    # HTTP server limits (stream_app/service/http.py): a connection that has not sent a
    # whole request within web_idle_timeout of opening (or of its last reply) is closed;
    # connections beyond web_max_connections get a 503 and are closed at once. The API
    # reads Redis through its own pool of web_redis_connections (the aggregator has its own).
    web_idle_timeout: float = Field(10.0, gt=0, le=3600)
    web_max_connections: int = Field(256, ge=1, le=65_536)
    web_redis_connections: int = Field(16, ge=1, le=1024)

    window: WindowSettings = Field(default_factory=WindowSettings)  # type: ignore[arg-type]
    detector: DetectorSettings = Field(default_factory=DetectorSettings)  # type: ignore[arg-type]

    @field_validator("quantize")
    @classmethod
    def _no_int8(cls, v: str) -> str:
        if v == "on":
            raise ValueError(
                "int8 quantisation was removed in finpulse 0.2 (see BENCHMARKS.md); "
                "unset FINPULSE_QUANTIZE: bf16 is used automatically where the CPU has it"
            )
        return v

    @field_validator("broker")
    @classmethod
    def _broker_url(cls, v: str) -> str:
        for url in v.split(";"):
            if not url.startswith(("kafka://", "aiokafka://")):
                raise ValueError(f"broker URL must start with kafka:// (got {url!r})")
        return v

    @field_validator(
        "topic_news",
        "topic_scored",
        "topic_alerts",
        "topic_deadletter",
        "topic_entity_events",
        "topic_alerts_deadletter",
    )
    @classmethod
    def _topic_name(cls, v: str) -> str:
        return check_topic_name(v)

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, v: SecretStr) -> SecretStr:
        if not v.get_secret_value().startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("redis_url must start with redis://, rediss:// or unix://")
        return v

    @model_validator(mode="after")
    def _shutdown_bounds(self) -> Settings:
        if self.shutdown_grace_seconds >= self.shutdown_timeout_seconds:
            raise ValueError(
                f"shutdown_grace_seconds ({self.shutdown_grace_seconds}) must be below "
                f"shutdown_timeout_seconds ({self.shutdown_timeout_seconds})"
            )
        return self

    @model_validator(mode="after")
    def _finite(self) -> Settings:
        # "1e999" is a typo, not a threshold, and Infinity is not JSON (summary.json).
        for section in (self, self.window, self.detector):
            for name, value in vars(section).items():
                if isinstance(value, float) and not math.isfinite(value):
                    raise ValueError(f"{name} must be a finite number, got {value}")
        return self

    @property
    def redis_url_masked(self) -> str:
        return mask_url(self.redis_url.get_secret_value())

    def with_overrides(self, **changes: object) -> Settings:
        """A copy with fields changed, validated like the original (used by --set and tests)."""
        data = self.model_dump()
        for key, value in changes.items():
            target = data
            *path, leaf = key.split(".")
            for part in path:
                target = target[part]
            target[leaf] = value
        return Settings.model_validate(data)


class ForwardSettings(BaseSettings):
    """``finpulse alerts forward`` (stream_app/service/forward): env ``FINPULSE_FORWARD_*``.

    Read by the forwarder only; the worker never needs it. ``config`` names a routes file
    (YAML or TOML, stream_app/service/forward/config.py); without one, each URL set here is
    a sink with one route taking every alert at ``min_severity`` or above. The URLs and
    the HMAC secret are ``SecretStr``: webhook URLs carry tokens, so logs show only the
    scheme, host and port. The retry and timeout values are the defaults a routes file's
    ``retry`` block may override.
    """

    model_config = SettingsConfigDict(env_prefix="FINPULSE_FORWARD_", extra="ignore", frozen=True)

    config: Path | None = None
    group: str = Field("finpulse-forward", min_length=1, max_length=200)  # consumer group
    webhook_url: SecretStr | None = None
    slack_url: SecretStr | None = None
    alertmanager_url: SecretStr | None = None
    hmac_secret: SecretStr | None = None  # key of the webhook's X-Finpulse-Signature
    min_severity: Literal["low", "medium", "high", "critical"] = "low"
    dashboard_url: str | None = None  # may hold {entity} and {alert_id}
    max_attempts: int = Field(5, ge=1, le=100)
    backoff_seconds: float = Field(1.0, gt=0, le=3600)
    backoff_max_seconds: float = Field(60.0, gt=0, le=3600)
    timeout_seconds: float = Field(10.0, gt=0, le=300)
    resend_seconds: float = Field(60.0, gt=0, le=3600)  # Alertmanager re-send while firing
    ledger_ttl_seconds: int = Field(7 * 86_400, ge=60)  # how long deliveries are remembered
