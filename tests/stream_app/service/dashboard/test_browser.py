"""The page in a real headless Chromium (Debian chromium + chromium-driver, selenium).

The server is the product's dashboard (``install_dashboard``) on a real aiohttp server,
fed by a ``MemoryDashboardSource`` the test changes while the page is open; the live
worker version of this test is ``tests/integration/test_dashboard_live.py``. Every wait
is a ``WebDriverWait`` on a DOM condition. A screenshot of the desk at 1280x800 is saved
to ``artifacts/test-screenshots/`` (path printed).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from stream_app.core.windows import Counts
from stream_app.service.dashboard.source import Headline, HeadlineLink
from tests.support.browser import (
    chromium_driver,
    click,
    console_errors,
    css,
    save_screenshot,
    wait_for,
)
from tests.support.dashboard_server import DashboardServer
from tests.support.dashboard_source import MemoryDashboardSource
from tests.support.desk_data import CLOCK_MS, DETECTOR, WINDOW, burst_alert, fill_desk, v2_alert

pytestmark = pytest.mark.browser

TOKEN = "desk-browser-token"
AXE = (
    Path(__file__).resolve().parents[4] / "tests" / "support" / "vendor" / "axe-core" / "axe.min.js"
)


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    d = chromium_driver(tmp_path_factory.mktemp("chromium"))
    try:
        yield d
    finally:
        d.quit()


@pytest.fixture
def desk() -> Iterator[DashboardServer]:
    source = MemoryDashboardSource()
    fill_desk(source)
    server = DashboardServer(source, TOKEN, WINDOW, DETECTOR).start()
    try:
        yield server
    finally:
        server.stop()


def _sign_in(driver: Any, url: str, token: str) -> None:
    driver.get(url + "/")
    wait_for(driver, lambda d: css(d, "#token") and css(d, "#token")[0].is_displayed())
    field = css(driver, "#token")[0]
    field.clear()
    field.send_keys(token + "\n")


def _burst(source: MemoryDashboardSource, sym: str, name: str, extra_negatives: int) -> None:
    """Add a negative burst to the last minute of ``ticker:SYM`` and publish its alert."""
    entity = f"ticker:{sym}"
    state = next(s for s in source._states.values() if s.entity == entity)
    bucket = CLOCK_MS // 60_000
    burst = Counts(extra_negatives, 1, 0, extra_negatives * 950_000)
    source.put_bucket(entity, bucket, burst)
    window = state.window + burst
    source.put_state(replace(state, window=window, clock_ms=CLOCK_MS))
    source.add_headline(
        entity,
        Headline(
            "burst-1", f"{name} recalls 2 million vehicles", CLOCK_MS, "negative", 0.97,
            (HeadlineLink(entity, "name", (0, len(name)), 0.9),),
        ),
    )  # fmt: skip
    source.publish_alert(burst_alert(entity, name, window, state.baseline, CLOCK_MS))


def test_sign_in_asks_for_the_token_and_refuses_a_wrong_one(
    driver: Any, desk: DashboardServer
) -> None:
    driver.execute_cdp_cmd(
        "Storage.clearDataForOrigin", {"origin": desk.url, "storageTypes": "all"}
    )
    _sign_in(driver, desk.url, "not-the-token")
    wait_for(driver, lambda d: "refused" in css(d, "#login-error")[0].text)
    assert "not-the-token" not in driver.current_url
    _sign_in(driver, desk.url, TOKEN)
    wait_for(driver, lambda d: len(css(d, "#entity-rows tr")) == 26)
    assert TOKEN not in driver.current_url
    # sign out forgets the token for this tab
    click(driver, "#signout")
    wait_for(driver, lambda d: css(d, "#login")[0].is_displayed())
    assert driver.execute_script("return sessionStorage.getItem('finpulse.token')") is None


def test_desk_live_alert_keyboard_and_accessibility(
    driver: Any, desk: DashboardServer, tmp_path: Path
) -> None:
    from selenium.webdriver.common.keys import Keys

    _sign_in(driver, desk.url, TOKEN)
    wait_for(driver, lambda d: len(css(d, "#entity-rows tr")) == 26)
    wait_for(driver, lambda d: css(d, "#conn")[0].text == "live")
    console_errors(driver)  # drop the expected 401 of the page's first, tokenless probe
    driver.execute_script("window.__sameDocument = true")

    # the layout fits 1280x800: no horizontal scrolling in the table
    overflow = driver.execute_script(
        "const s = document.querySelector('#entities-panel .scroll');"
        "return [s.scrollWidth, s.clientWidth, innerWidth, innerHeight]"
    )
    assert overflow[0] <= overflow[1], overflow
    assert overflow[2:] == [1280, 800]

    # a negative burst arrives: the alert, its highlighted evidence and the top row appear
    _burst(desk.source, "TSLA", "Tesla", 14)
    card = '#firing li[data-entity="ticker:TSLA"]'
    wait_for(driver, lambda d: css(d, card))
    assert driver.execute_script("return window.__sameDocument") is True  # no reload
    marks = [m.text for m in css(driver, card + " mark.link")]
    assert marks == ["Tesla", "Tesla", "Tesla"]
    assert css(driver, "#entity-rows tr")[0].get_attribute("data-entity") == "ticker:TSLA"
    wait_for(driver, lambda d: "TSLA" in css(d, "#announce")[0].text)

    # keyboard: filter, then Tab into the table, arrow down/up, Enter opens the detail
    box = css(driver, "#filter")[0]
    box.send_keys("tsl")
    wait_for(driver, lambda d: len(css(d, "#entity-rows tr")) == 1)
    box.send_keys(Keys.CONTROL, "a", Keys.DELETE)
    wait_for(driver, lambda d: len(css(d, "#entity-rows tr")) == 26)
    click(driver, "#firing-only")
    wait_for(driver, lambda d: len(css(d, "#entity-rows tr")) == 1)
    click(driver, "#firing-only")
    wait_for(driver, lambda d: len(css(d, "#entity-rows tr")) == 26)
    active = driver.switch_to.active_element
    active.send_keys(Keys.TAB)
    row = driver.switch_to.active_element
    assert row.get_attribute("data-entity") == "ticker:TSLA"
    outline = driver.execute_script("return getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"  # visible focus
    row.send_keys(Keys.ARROW_DOWN)
    second = driver.switch_to.active_element
    assert second.get_attribute("data-entity") == css(driver, "#entity-rows tr")[1].get_attribute(
        "data-entity"
    )
    second.send_keys(Keys.ARROW_UP)
    driver.switch_to.active_element.send_keys(Keys.ENTER)
    wait_for(driver, lambda d: css(d, "#detail-h")[0].text == "TSLA · ticker")
    wait_for(driver, lambda d: css(d, "#chart canvas"))
    wait_for(driver, lambda d: css(d, "#headlines li mark.link.self"))
    assert css(driver, "#headlines li")[0].text.endswith("Tesla recalls 2 million vehicles")

    # WCAG 2 A/AA rules (contrast included) by axe-core, in this browser, on this state
    driver.execute_script(AXE.read_text(encoding="utf-8"))
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21aa']}})"
        ".then(r => done(r.violations.map(v => [v.id, v.nodes.slice(0, 3).map(n => n.target)])))"
        ".catch(e => done(['axe failed', String(e)]));"
    )
    assert result == [], result

    # sparklines are fetched for the rows in view: the last row gets them once scrolled to
    last = '#entity-rows tr:last-child [data-spark="share"] svg'
    assert not css(driver, last)
    driver.execute_script(
        "const s = document.querySelector('#entities-panel .scroll'); s.scrollTop = s.scrollHeight"
    )
    wait_for(driver, lambda d: css(d, last))
    driver.execute_script("document.querySelector('#entities-panel .scroll').scrollTop = 0")

    save_screenshot(driver, tmp_path, "dashboard-desk")
    assert console_errors(driver) == []


def test_headlines_are_text_never_markup(driver: Any, desk: DashboardServer) -> None:
    entity = "ticker:AAPL"
    evil = '<img src=x onerror="window.__xss=1">Apple <b>beats</b>'
    desk.source.add_headline(
        entity,
        Headline("evil", evil, CLOCK_MS + 1, "neutral", 0.1,
                 (HeadlineLink(entity, "name", (36, 41), 0.9),)),
    )  # fmt: skip
    _sign_in(driver, desk.url, TOKEN)
    click(driver, 'tr[data-entity="ticker:AAPL"]')
    wait_for(driver, lambda d: css(d, "#headlines li"))
    first = css(driver, "#headlines li")[0]
    assert evil in first.text
    assert [m.text for m in first.find_elements("css selector", "mark")] == ["Apple"]
    assert driver.execute_script("return window.__xss === undefined")
    assert not first.find_elements("css selector", "img, b")


def test_without_a_stream_the_page_polls_and_still_shows_alerts(driver: Any) -> None:
    """A proxy that buffers or refuses the stream: the page falls back to polling."""
    source = MemoryDashboardSource()
    fill_desk(source)
    server = DashboardServer(source, None, WINDOW, DETECTOR, max_streams=0).start()
    try:
        driver.get(server.url + "/")  # no token configured: no sign-in
        wait_for(driver, lambda d: len(css(d, "#entity-rows tr")) == 26)
        assert not css(driver, "#signout")[0].is_displayed()
        wait_for(driver, lambda d: css(d, "#conn")[0].get_attribute("data-state") == "polling")
        _burst(source, "NVDA", "Nvidia", 14)
        wait_for(driver, lambda d: css(d, '#firing li[data-entity="ticker:NVDA"]'), timeout=20)
    finally:
        server.stop()


def test_a_forwarded_alert_link_opens_its_entity_and_alert(
    driver: Any, desk: DashboardServer
) -> None:
    """``dashboard_url`` of alert forwarding: ``/?entity={entity}&alert_id={alert_id}``."""
    _burst(desk.source, "META", "Meta", 14)
    alert_id = desk.source._alerts[-1]["alert_id"]
    _sign_in(driver, desk.url, TOKEN)
    driver.get(f"{desk.url}/?entity=ticker:META&alert_id={alert_id}")  # token kept in the tab
    wait_for(driver, lambda d: css(d, "#detail-h")[0].text == "META · ticker")
    card = f'#firing li[data-alert-id="{alert_id}"]'
    wait_for(driver, lambda d: "is-linked" in css(d, card)[0].get_attribute("class"))
    # choosing another row names it in the URL (shareable; never the token)
    click(driver, 'tr[data-entity="market"]')
    wait_for(driver, lambda d: d.current_url.endswith("/?entity=market"))
    assert TOKEN not in driver.current_url
    # a malformed name in the link is ignored, not sent to the API
    driver.get(f"{desk.url}/?entity=ticker:META%0A")
    wait_for(driver, lambda d: len(css(d, "#entity-rows tr")) == 26)
    assert css(driver, "#detail-empty")[0].is_displayed()


def test_positive_and_volume_alerts_show_their_own_reading(
    driver: Any, desk: DashboardServer, tmp_path: Path
) -> None:
    """Schema v2 alerts: the kind's count and baseline, evidence spans highlighted."""
    from selenium.webdriver.common.keys import Keys

    src = desk.source
    for sym, name, kind, extra in (
        ("NFLX", "Netflix", "positive", {"count": 11, "share": 0.73, "total_count": 15,
                                         "score": 4.2}),
        ("UBER", "Uber", "volume", {"count": 48, "share": 2.9, "expected_count": 16.5,
                                    "repeats": 7, "score": 7.9, "severity": "medium"}),
    ):  # fmt: skip
        state = next(s for s in src._states.values() if s.entity == f"ticker:{sym}")
        base = burst_alert(state.entity, name, state.window, state.baseline, CLOCK_MS)
        wire = v2_alert(base, kind, **extra)
        wire["evidence"][2]["headline"] += " https://t.co/" + "x" * 150  # one long word
        src.publish_alert(wire)
    _sign_in(driver, desk.url, TOKEN)
    pos, vol = '#firing li[data-entity="ticker:NFLX"]', '#firing li[data-entity="ticker:UBER"]'
    wait_for(driver, lambda d: css(d, pos) and css(d, vol))
    assert "11 of 15 " in css(driver, pos + " .alert-meta")[0].text
    assert "positive (73% vs" in css(driver, pos + " .alert-meta")[0].text
    assert "p(pos) 0.90" in css(driver, pos + " .evidence")[0].text
    vol_meta = css(driver, vol + " .alert-meta")[0].text
    assert "48 stories vs 16.5 expected" in vol_meta
    assert "7 repeats not counted" in vol_meta
    assert [m.text for m in css(driver, vol + " mark.link.self")] == ["Uber"] * 3
    # the table ranks the medium volume alert first and shows its own z beside the negative z
    first = css(driver, "#entity-rows tr")[0]
    assert first.get_attribute("data-entity") == "ticker:UBER"
    assert "vol 7.9" in first.text
    scroll = "const s = document.querySelector('#entities-panel .scroll');"
    assert driver.execute_script(scroll + "return s.scrollWidth <= s.clientWidth")  # fits 1280
    # the alert's entity name opens its detail (a button: Enter works too)
    css(driver, vol + " button.alert-entity")[0].send_keys(Keys.ENTER)
    wait_for(driver, lambda d: css(d, "#detail-h")[0].text == "UBER · ticker")
    alerts = "const a = document.querySelector('#alerts .scroll');"
    assert driver.execute_script(alerts + "return a.scrollWidth <= a.clientWidth")  # long URL
    save_screenshot(driver, tmp_path, "dashboard-kinds")
