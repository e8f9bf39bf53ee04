"""README's "Subscribing to alerts" client examples, run as written against the embedded broker.

The README promises that stock Kafka clients read the alert topic. Its Python examples are
taken from README.md itself (every ```python block of that section), pointed at a tansu
broker started by the fixtures, a uuid-named topic and a fresh consumer group, and run as
child processes: each must print every alert published there, with the entity as key and
the alert JSON as value, exactly as the worker publishes them (``AggregateStage``).

aiokafka is the worker's own client; confluent-kafka is librdkafka, the C client behind most
non-Java clients (in the dev extra for this test). Debian's kcat (librdkafka 2.0.2) cannot
talk to tansu at all; the README's table says so.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from stream_app.devenv.embedded import Service
from stream_app.schemas import Alert
from tests.stream_app.service.forward.alerts import alert

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_examples() -> dict[str, str]:
    """The ```python blocks of README's "Subscribing to alerts", by the client they import."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Subscribing to alerts", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    out: dict[str, str] = {}
    for code in blocks:
        client = re.search(r"^from (\w+) import", code, flags=re.M)
        assert client, f"a README example without a client import:\n{code}"
        out[client.group(1)] = code
    return out


def test_readme_shows_both_tested_clients() -> None:
    assert set(readme_examples()) == {"aiokafka", "confluent_kafka"}


async def _publish(broker: Service, topic: str, alerts: list[Alert]) -> None:
    """As the worker publishes alerts: key = entity, value = the alert's JSON, acks=all."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=f"127.0.0.1:{broker.port}", acks="all")
    await producer.start()
    try:
        for a in alerts:
            await producer.send_and_wait(topic, a.model_dump_json().encode(), key=a.entity.encode())
    finally:
        await producer.stop()


def _run_until(code: str, want: int, within: float) -> tuple[list[str], str]:
    """Run ``code`` in a child Python until it printed ``want`` lines (or ``within`` s)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    lines: list[str] = []
    got_all = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.strip())
            if len(lines) >= want:
                got_all.set()
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    got_all.wait(within)
    proc.kill()
    _, err = proc.communicate(timeout=30)
    return lines, err[-3000:]


@pytest.mark.parametrize("client", ["aiokafka", "confluent_kafka"])
async def test_readme_example_reads_the_alerts(client: str, broker: Service, unique: str) -> None:
    topic = f"alerts-{unique}"
    alerts = [
        alert("ticker:ACME", "firing", "high"),
        alert("market", "firing", "medium"),
        alert("ticker:ACME", "resolved", "high"),
    ]
    await _publish(broker, topic, alerts)
    code = (
        readme_examples()[client]
        .replace('"localhost:9092"', f'"127.0.0.1:{broker.port}"')
        .replace('"sentiment.alerts"', f'"{topic}"')
        .replace('"desk"', f'"desk-{unique}"')
    )
    started = time.monotonic()
    lines, err = _run_until(code, len(alerts), within=90)
    want = [f"{a.entity} {a.state} {a.severity} {a.alert_id}" for a in alerts]
    took = time.monotonic() - started
    assert sorted(lines) == sorted(want), f"{client} printed {lines} in {took:.0f}s\n{err}"
    # Partitions interleave; one entity's alerts keep their order (the key picks the partition).
    acme = [line for line in lines if line.startswith("ticker:ACME ")]
    assert acme == [w for w in want if w.startswith("ticker:ACME ")]
