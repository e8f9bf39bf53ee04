"""Connection settings for the Kafka clients (Faust and aiokafka) and topic creation.

One place turns ``Settings.broker_*`` into client arguments, so the worker, the alert
tail, the demo and the tests connect the same way (plain, TLS, SASL). The worker creates
its topics with the admin client before Faust starts because Faust only creates its own
internal topics: any other topic would be auto-created by the broker (tansu, or Kafka with
``auto.create.topics.enable``) with the broker's default partition count, or not at all.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any

from models.errors import FinpulseError
from stream_app.config import Settings

__all__ = [
    "BrokerError",
    "aiokafka_kwargs",
    "all_topics",
    "bootstrap_servers",
    "ensure_topics",
    "faust_credentials",
    "ssl_context",
    "start_client",
    "topic_partitions",
]

log = logging.getLogger(__name__)

_TOPIC_ALREADY_EXISTS = 36


class BrokerError(FinpulseError):
    """The broker refused or could not be reached for an administrative request."""


def bootstrap_servers(settings: Settings) -> list[str]:
    """``kafka://h1:9092;kafka://h2:9092`` -> ``["h1:9092", "h2:9092"]``."""
    return [url.split("://", 1)[1].rstrip("/") for url in settings.broker.split(";")]


def all_topics(settings: Settings) -> list[str]:
    return [
        settings.topic_news,
        settings.topic_scored,
        settings.topic_entity_events,
        settings.topic_alerts,
        settings.topic_deadletter,
    ]


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of SSL / SASL_SSL; an unreadable CA, certificate or key file is a
    ``BrokerError`` naming its variable, not a traceback."""
    if settings.broker_security_protocol not in ("SSL", "SASL_SSL"):
        return None
    cafile, certfile, keyfile = (
        settings.broker_ssl_cafile, settings.broker_ssl_certfile, settings.broker_ssl_keyfile
    )  # fmt: skip
    try:
        ctx = ssl.create_default_context(cafile=str(cafile) if cafile else None)
    except (OSError, ssl.SSLError) as exc:
        raise BrokerError(f"FINPULSE_BROKER_SSL_CAFILE {cafile}: {exc}") from None
    if certfile:
        try:
            ctx.load_cert_chain(str(certfile), str(keyfile) if keyfile else None)
        except (OSError, ssl.SSLError) as exc:
            raise BrokerError(
                f"FINPULSE_BROKER_SSL_CERTFILE/KEYFILE {certfile}, {keyfile}: {exc}"
            ) from None
    return ctx


def _sasl(settings: Settings) -> tuple[str, str]:
    if settings.broker_sasl_username is None or settings.broker_sasl_password is None:
        raise BrokerError(
            f"{settings.broker_security_protocol} needs FINPULSE_BROKER_SASL_USERNAME "
            "and FINPULSE_BROKER_SASL_PASSWORD"
        )
    return settings.broker_sasl_username, settings.broker_sasl_password.get_secret_value()


def aiokafka_kwargs(settings: Settings) -> dict[str, Any]:
    """Keyword arguments shared by aiokafka producers, consumers and the admin client."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": bootstrap_servers(settings),
        "security_protocol": settings.broker_security_protocol,
    }
    ctx = ssl_context(settings)
    if ctx is not None:
        kwargs["ssl_context"] = ctx
    if settings.broker_security_protocol.startswith("SASL"):
        user, password = _sasl(settings)
        kwargs.update(
            sasl_mechanism=settings.broker_sasl_mechanism,
            sasl_plain_username=user,
            sasl_plain_password=password,
        )
    return kwargs


async def start_client(client: Any, settings: Settings) -> None:
    """``client.start()`` (an aiokafka producer or consumer) within ``broker_connect_timeout``.

    aiokafka waits ``request_timeout_ms`` (40 s) per request on a broker that accepts the
    connection and never answers; here that is a ``BrokerError`` after the configured time.
    A client that did not start is stopped (aiokafka warns about, and leaks, one that is not).
    """
    from aiokafka.errors import KafkaConnectionError

    timeout = settings.broker_connect_timeout
    try:
        await asyncio.wait_for(client.start(), timeout)
    except (TimeoutError, KafkaConnectionError, OSError) as exc:
        await client.stop()
        why = f"no answer within {timeout:g}s" if isinstance(exc, TimeoutError) else str(exc)
        raise BrokerError(f"cannot connect to broker {settings.broker}: {why}") from None
    except BaseException:
        await client.stop()
        raise


def faust_credentials(settings: Settings) -> Any:
    """``broker_credentials`` for ``faust.App`` (``None`` for PLAINTEXT)."""
    import faust

    protocol = settings.broker_security_protocol
    if protocol == "PLAINTEXT":
        return None
    ctx = ssl_context(settings)
    if protocol == "SSL":
        return faust.SSLCredentials(ctx)
    user, password = _sasl(settings)
    return faust.SASLCredentials(
        username=user,
        password=password,
        mechanism=settings.broker_sasl_mechanism,
        ssl_context=ctx,
    )


async def ensure_topics(settings: Settings, topics: list[str] | None = None) -> list[str]:
    """Create missing topics with ``topic_partitions``; returns the ones it created."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    wanted = topics if topics is not None else all_topics(settings)
    timeout_ms = int(settings.broker_connect_timeout * 1000)
    admin = AIOKafkaAdminClient(**aiokafka_kwargs(settings), request_timeout_ms=timeout_ms)
    try:
        await admin.start()
    except Exception as exc:
        raise BrokerError(f"cannot reach broker {settings.broker}: {exc}") from exc
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in wanted if t not in existing]
        if not missing:
            return []
        response = await admin.create_topics(
            [NewTopic(t, settings.topic_partitions, settings.topic_replication) for t in missing]
        )
        created = []
        for name, code, *rest in response.topic_errors:
            if code == 0:
                created.append(name)
            elif code != _TOPIC_ALREADY_EXISTS:  # lost a race with another worker: fine
                raise BrokerError(f"cannot create topic {name!r}: error {code} {rest}")
        if created:
            log.info("created topics %s (%d partitions)", created, settings.topic_partitions)
        return created
    finally:
        await admin.close()


async def topic_partitions(settings: Settings, topics: list[str]) -> dict[str, int]:
    """How many partitions the broker has for each of ``topics`` (missing ones are left out).

    The score stage routes entity events by ``crc32(entity) % partitions`` and the
    aggregators wait for every news partition, so both must use the broker's counts, not
    the configured default (a topic created elsewhere may differ).
    """
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(**aiokafka_kwargs(settings), group_id=None,
                                enable_auto_commit=False, request_timeout_ms=15_000)  # fmt: skip
    try:
        await consumer.start()
    except Exception as exc:
        await consumer.stop()
        raise BrokerError(f"cannot reach broker {settings.broker}: {exc}") from exc
    try:
        await consumer.topics()  # refreshes metadata; partitions_for_topic reads the cache
        found = {t: consumer.partitions_for_topic(t) for t in topics}
        return {t: len(parts) for t, parts in found.items() if parts}
    finally:
        await consumer.stop()
