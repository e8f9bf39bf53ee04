"""``finpulse demo``: the sample stream, and no orphan processes after Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from stream_app.config import Settings
from stream_app.core.validation import parse_news
from stream_app.devenv.demo import BURST_TICKER, build_demo_feed


def test_feed_is_valid_news_with_a_burst_inside_ordinary_traffic(data_dir: Path) -> None:
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    rows = build_demo_feed(data_dir, now=now)
    settings = Settings()  # type: ignore[call-arg]
    items = [parse_news(json.dumps(r).encode(), settings=settings) for r in rows]
    assert [i.published_at for i in items] == sorted(i.published_at for i in items)
    assert items[-1].published_at <= now
    burst = [r for r in rows if r.get("event_id")]
    assert len(burst) == 15
    # real headlines about Tesla, which the linker finds by name: no cashtag is added
    assert all(_about_tesla(r["headline"]) for r in burst)
    assert sum(BURST_TICKER in r["tickers"] for r in burst) < len(burst) / 2
    # Tesla also has ordinary news before and after the burst: a baseline and a resolve
    first, last = burst[0]["published_at"], burst[-1]["published_at"]
    ordinary = [r for r in rows if not r.get("event_id") and _about_tesla(r["headline"])]
    assert sum(r["published_at"] < first for r in ordinary) >= 3
    assert sum(r["published_at"] > last for r in ordinary) >= 3
    assert len(Counter(t for r in rows for t in r["tickers"])) >= 5


def _about_tesla(headline: str) -> bool:
    return "tesla" in headline.lower() or f"${BURST_TICKER}" in headline


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_ctrl_c_stops_every_child(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Interrupted while it waits for alerts, the demo leaves no broker, Redis or worker."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINPULSE_")}
    out_path = tmp_path / "demo.out"
    with out_path.open("wb") as out:
        demo = subprocess.Popen(
            [sys.executable, "-m", "finpulse", "demo", "--model", str(tiny_model_dir),
             "--workdir", str(tmp_path / "work")],
            stdout=out, stderr=subprocess.STDOUT, env=env,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while b"published" not in out_path.read_bytes():
            assert demo.poll() is None, out_path.read_text()
            assert time.monotonic() < deadline, out_path.read_text()
            time.sleep(0.3)
        # the demo printed the dashboard's address, and the worker serves the page there
        printed = re.search(rb"dashboard: (http://127\.0\.0\.1:\d+/)", out_path.read_bytes())
        assert printed, out_path.read_text()
        with urllib.request.urlopen(printed.group(1).decode(), timeout=10) as page:
            assert page.status == 200
            assert b"<title>finpulse desk</title>" in page.read()
        children = _children(demo.pid)
        assert len(children) == 3, children  # broker, redis, worker
        demo.send_signal(signal.SIGINT)
        assert demo.wait(60) == 130
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in children) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [p for p in children if _alive(p)]
    finally:
        if demo.poll() is None:
            demo.kill()
