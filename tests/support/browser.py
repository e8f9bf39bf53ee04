"""A real headless Chromium (Debian's ``chromium`` + ``chromium-driver``) driven by selenium.

No browser download and no network: the binaries come from the apt packages that
``scripts/bootstrap.sh`` installs, the driver path is given explicitly (so selenium's
driver manager never runs), and the flags stop Chromium's background calls to Google
(which this machine's closed network refuses). The viewport is exactly ``width x height``
(device metrics override), so screenshots show what a desk sees at 1280x800.

A missing binary fails loudly with the command that installs it; nothing skips.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

__all__ = [
    "CHROMEDRIVER",
    "CHROMIUM",
    "chromium_driver",
    "click",
    "console_errors",
    "css",
    "save_screenshot",
    "wait_for",
]

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT_DIR = REPO_ROOT / "artifacts" / "test-screenshots"

_FLAGS = (
    "--headless=new",
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-features=Translate,OptimizationHints,MediaRouter",
    "--force-color-profile=srgb",
    "--hide-scrollbars",
)


def chromium_driver(profile_dir: Path, width: int = 1280, height: int = 800) -> Any:
    """A started ``selenium.webdriver.Chrome`` on Debian's chromium; the caller quits it."""
    for binary in (CHROMIUM, CHROMEDRIVER):
        if not Path(binary).exists():
            raise AssertionError(
                f"{binary} is missing: run scripts/bootstrap.sh "
                "(apt-get install chromium chromium-driver)"
            )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile_dir.mkdir(parents=True, exist_ok=True)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in _FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile_dir}")
    options.add_argument(f"--window-size={width},{height}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=CHROMEDRIVER, log_output=str(profile_dir / "driver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
    )
    return driver


def css(driver: Any, selector: str) -> list[Any]:
    """The elements matching a CSS selector now (an empty list when none)."""
    from selenium.webdriver.common.by import By

    return list(driver.find_elements(By.CSS_SELECTOR, selector))


def wait_for(driver: Any, condition: Any, timeout: float = 10.0) -> Any:
    """``condition(driver)`` once it is truthy (a DOM condition; never a sleep)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(
        driver, timeout, poll_frequency=0.1, ignored_exceptions=(StaleElementReferenceException,)
    )
    return wait.until(condition)


def click(driver: Any, selector: str, timeout: float = 10.0) -> None:
    """Click the first match once it is there; the live page may redraw it in between."""

    def clicked(d: Any) -> bool:
        found = css(d, selector)
        if found:
            found[0].click()
        return bool(found)

    wait_for(driver, clicked, timeout)


def console_errors(driver: Any) -> list[str]:
    """Severe browser console entries since the last call (CSP violations, JS errors)."""
    return [json.dumps(e) for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def save_screenshot(driver: Any, tmp_dir: Path, name: str) -> Path:
    """PNG of the viewport in the test's tmp dir, copied to ``artifacts/test-screenshots``;
    prints where both are."""
    shot = tmp_dir / f"{name}.png"
    driver.save_screenshot(str(shot))
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    kept = SCREENSHOT_DIR / shot.name
    shutil.copyfile(shot, kept)
    print(f"screenshot: {kept} (test copy {shot})")
    return kept
