"""Kafka client settings from ``Settings.broker_*`` and idempotent topic creation."""

from __future__ import annotations

import pytest

from stream_app.config import Settings
from stream_app.devenv.embedded import Service
from stream_app.service.broker import BrokerError, aiokafka_kwargs, ensure_topics, faust_credentials


def _settings(**kw: object) -> Settings:
    return Settings(**kw)  # type: ignore[arg-type]


def test_plaintext_has_no_credentials() -> None:
    s = _settings(broker="kafka://a:9092;kafka://b:9093")
    assert aiokafka_kwargs(s) == {
        "bootstrap_servers": ["a:9092", "b:9093"],
        "security_protocol": "PLAINTEXT",
    }
    assert faust_credentials(s) is None


def test_sasl_ssl_passes_mechanism_user_password_and_tls_context() -> None:
    import faust

    s = _settings(
        broker_security_protocol="SASL_SSL",
        broker_sasl_mechanism="SCRAM-SHA-512",
        broker_sasl_username="svc",
        broker_sasl_password="pw-123",
    )
    kw = aiokafka_kwargs(s)
    assert kw["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (kw["sasl_plain_username"], kw["sasl_plain_password"]) == ("svc", "pw-123")
    assert kw["ssl_context"] is not None
    creds = faust_credentials(s)
    assert isinstance(creds, faust.SASLCredentials)
    assert "pw-123" not in repr(s)


def test_sasl_without_password_is_a_clear_error() -> None:
    s = _settings(broker_security_protocol="SASL_PLAINTEXT", broker_sasl_username="svc")
    with pytest.raises(BrokerError, match="FINPULSE_BROKER_SASL_PASSWORD"):
        aiokafka_kwargs(s)


@pytest.mark.integration
async def test_ensure_topics_creates_missing_topics_once(broker: Service, unique: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    s = _settings(broker=broker.url, topic_partitions=3)
    names = [f"a-{unique}", f"b-{unique}"]
    assert sorted(await ensure_topics(s, names)) == sorted(names)
    assert await ensure_topics(s, names) == []
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.url.removeprefix("kafka://"))
    await admin.start()
    try:
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    assert {t["topic"]: len(t["partitions"]) for t in described} == dict.fromkeys(names, 3)


async def test_unreachable_broker_is_a_clear_error() -> None:
    from stream_app.devenv.embedded import free_port

    s = _settings(broker=f"kafka://127.0.0.1:{free_port()}")
    with pytest.raises(BrokerError, match="cannot reach broker"):
        await ensure_topics(s, ["x"])
