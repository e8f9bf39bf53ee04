"""Kafka security from Settings: every SASL mechanism, TLS with a private CA and client cert.

tansu cannot do SASL, so these check the client arguments aiokafka and Faust receive; the
TLS contexts are real (built from a generated certificate), so a wrong file would fail.
"""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path
from typing import Any

import faust
import pytest
from pydantic import SecretStr

from stream_app.config import Settings
from stream_app.service.broker import BrokerError, aiokafka_kwargs, faust_credentials

PASSWORD = "kafka-pw-5e1c"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("kafka-tls")
    cert, key = d / "client.pem", d / "client.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "2", "-subj", "/CN=finpulse-client"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def _s(**kw: Any) -> Settings:
    return Settings(broker="kafka://b1:9093;kafka://b2:9093", **kw)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_plaintext_mechanisms(mechanism: str) -> None:
    s = _s(
        broker_security_protocol="SASL_PLAINTEXT",
        broker_sasl_mechanism=mechanism,
        broker_sasl_username="svc",
        broker_sasl_password=SecretStr(PASSWORD),
    )
    kw = aiokafka_kwargs(s)
    assert kw["bootstrap_servers"] == ["b1:9093", "b2:9093"]
    assert kw["security_protocol"] == "SASL_PLAINTEXT"
    assert kw["sasl_mechanism"] == mechanism
    assert (kw["sasl_plain_username"], kw["sasl_plain_password"]) == ("svc", PASSWORD)
    assert "ssl_context" not in kw
    creds = faust_credentials(s)
    assert isinstance(creds, faust.SASLCredentials)
    assert (creds.username, creds.password) == ("svc", PASSWORD)
    assert (
        str(creds.mechanism.value if hasattr(creds.mechanism, "value") else creds.mechanism)
        == mechanism
    )
    assert creds.ssl_context is None


def test_mutual_tls_context_verifies_the_server_and_presents_the_client_cert(
    tls: tuple[Path, Path],
) -> None:
    cert, key = tls
    s = _s(
        broker_security_protocol="SSL",
        broker_ssl_cafile=cert,
        broker_ssl_certfile=cert,
        broker_ssl_keyfile=key,
    )
    kw = aiokafka_kwargs(s)
    ctx = kw["ssl_context"]
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.check_hostname
    assert any("finpulse-client" in str(c.get("subject")) for c in ctx.get_ca_certs())
    assert "sasl_mechanism" not in kw
    creds = faust_credentials(s)
    assert isinstance(creds, faust.SSLCredentials)


def test_sasl_ssl_combines_both(tls: tuple[Path, Path]) -> None:
    cert, _ = tls
    s = _s(
        broker_security_protocol="SASL_SSL",
        broker_sasl_mechanism="SCRAM-SHA-256",
        broker_sasl_username="svc",
        broker_sasl_password=SecretStr(PASSWORD),
        broker_ssl_cafile=cert,
    )
    creds = faust_credentials(s)
    assert isinstance(creds, faust.SASLCredentials)
    assert isinstance(creds.ssl_context, ssl.SSLContext)


def test_a_missing_tls_file_fails_at_startup(tmp_path: Path) -> None:
    s = _s(broker_security_protocol="SSL", broker_ssl_cafile=tmp_path / "nope.pem")
    with pytest.raises(BrokerError, match="FINPULSE_BROKER_SSL_CAFILE"):  # a line, not a trace
        aiokafka_kwargs(s)


def test_sasl_without_username_is_a_clear_error() -> None:
    s = _s(broker_security_protocol="SASL_SSL", broker_sasl_password=SecretStr(PASSWORD))
    with pytest.raises(BrokerError, match="USERNAME"):
        aiokafka_kwargs(s)


def test_the_password_is_not_in_the_settings_repr() -> None:
    s = _s(
        broker_security_protocol="SASL_PLAINTEXT",
        broker_sasl_username="svc",
        broker_sasl_password=SecretStr(PASSWORD),
        redis_url=SecretStr(f"redis://:{PASSWORD}@h:6379/0"),
        api_token=SecretStr(PASSWORD),
    )
    assert PASSWORD not in repr(s)
    assert PASSWORD not in str(s.model_dump())
    assert PASSWORD not in s.redis_url_masked
