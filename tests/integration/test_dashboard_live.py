"""The desk dashboard against a LIVE worker: a negative burst appears in the open page.

A real ``finpulse worker`` subprocess (tansu, Redis, the tiny random model, an API
token) serves ``GET /``; headless Chromium signs in with the token and shows the calm
entities; then a negative burst is produced to the news topic and the test waits (DOM
conditions, no sleeps) for the alert to appear in the same document, without a reload.
The model is random, so the burst's texts are those it calls negative (as in
``test_pipeline``). The screenshot is a test artefact: ``artifacts/test-screenshots/``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from stream_app.devenv.embedded import Service
from tests.support.browser import (
    chromium_driver,
    click,
    console_errors,
    css,
    save_screenshot,
    wait_for,
)
from tests.support.worker_proc import (
    WorkerProcess,
    calm_news,
    produce,
    split_by_model,
    worker_env,
)

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.timeout(300)]

TOKEN = "live-desk-token-7d1e"
T0 = (datetime.now(UTC) - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)


def _news(i: int, tickers: list[str], when: datetime, headline: str) -> bytes:
    item = {"id": f"n{i}", "headline": headline, "tickers": tickers}
    return json.dumps({**item, "published_at": when.isoformat()}).encode()


@pytest.fixture
def worker(
    broker: Service, redis_server: Service, tiny_model_dir: Path, unique: str, tmp_path: Path
) -> Iterator[WorkerProcess]:
    env = worker_env(
        broker, redis_server, tiny_model_dir, unique,
        api_token=TOKEN,
        topic_partitions=1,  # each entity's events in event-time order
        bucket_seconds=60, window_seconds=300, baseline_seconds=3600, retention_seconds=7200,
        allowed_lateness_seconds=120, min_negative_count=5, fire_z=3.0, resolve_z=1.0,
        share_floor=0.5, resolve_share_floor=0.2, cooldown_seconds=60,
    )  # fmt: skip
    w = WorkerProcess(env, tmp_path / "worker.log")
    w.start()
    try:
        yield w
    finally:
        w.stop()


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[Any]:
    d = chromium_driver(tmp_path / "chromium")
    try:
        yield d
    finally:
        d.quit()


async def test_a_burst_appears_in_the_open_page_without_reload(
    worker: WorkerProcess, driver: Any, tiny_model_dir: Path, data_dir: Path, tmp_path: Path
) -> None:
    from stream_app.offline.synthetic import load_labelled_texts

    rng = random.Random(11)
    texts = [t.text for t in rng.sample(load_labelled_texts(data_dir), 2000)]
    negative, calm = split_by_model(tiny_model_dir, texts, T0)
    assert negative, "the tiny model must call at least one text negative"
    assert len(calm) >= 50, "the tiny model must call some texts not negative"
    settings = worker.settings

    rows = calm_news(rng, calm, T0, range(60))  # an hour of calm news
    await produce(settings, [_news(i, tk, when, text) for i, (when, tk, text) in enumerate(rows)])

    def on(selector: str) -> list[Any]:
        return css(driver, selector)

    def wait(condition: Any, timeout: float = 60) -> Any:
        return wait_for(driver, lambda _: condition(), timeout)

    driver.get(worker.base_url + "/")
    wait(lambda: on("#token") and on("#token")[0].is_displayed(), 20)
    on("#token")[0].send_keys(TOKEN + "\n")
    burst_row = 'tr[data-entity="ticker:BURST"]'
    wait(lambda: on(burst_row))
    wait(lambda: on("#conn")[0].text == "live")
    assert not on("#firing li")
    driver.execute_script("window.__sameDocument = true")
    console_errors(driver)  # drop the page's expected 401 of its first, tokenless probe

    # the burst: 12 items the model calls negative, within 3 minutes
    start = T0 + timedelta(minutes=60)
    burst = [
        _news(10_000 + k, ["BURST"], start + timedelta(seconds=15 * k), negative[k % len(negative)])
        for k in range(12)
    ]
    await produce(settings, burst)

    card = '#firing li[data-entity="ticker:BURST"]'
    wait(lambda: on(card), 90)
    assert driver.execute_script("return window.__sameDocument") is True  # no reload
    evidence = [li.text for li in on(card + " .evidence li")]
    assert evidence
    assert all(any(e.startswith(n) for n in negative) for e in evidence)
    # the firing entity ranks above every entity that is not firing
    states = [
        (tr.get_attribute("data-entity"), tr.get_attribute("class")) for tr in on("#entity-rows tr")
    ]
    at = [e for e, _ in states].index("ticker:BURST")
    assert all(cls == "is-firing" for _, cls in states[: at + 1]), states
    assert "BURST" in on("#announce")[0].text

    click(driver, burst_row)  # the detail view of the firing entity
    wait(lambda: on("#detail-h")[0].text == "BURST · ticker")
    wait(lambda: on("#chart canvas"))
    save_screenshot(driver, tmp_path, "dashboard-live-worker")
    assert console_errors(driver) == []
