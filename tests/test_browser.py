"""The dashboard in a real browser: launch a tiny digits comparison through the form and watch it.

Starts ``streamlit run app.py`` on a free localhost port with a temporary run store, drives
Debian's chromium through Selenium, and leaves a screenshot in ``test-artifacts/``. Every wait is
bounded and waits for an element, not for time.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cbal import runner
from cbal.store import Store

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("CBAL_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CBAL_CHROMEDRIVER", "/usr/bin/chromedriver")

pytestmark = pytest.mark.slow


def _missing() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (Path(path).is_file() or shutil.which(path)):
            return f"{path} not found (Debian: apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -r requirements-dev.txt)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _until(what: str, check: Callable[[], object], timeout: float, poll: float = 0.25) -> object:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
            return r.read().strip() == b"ok"
    except OSError:
        return False


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Store]]:
    """``streamlit run app.py`` on a free port with its own run store; always stopped."""
    store = Store(tmp_path / "cache")
    port = _free_port()
    log = open(tmp_path / "streamlit.log", "wb")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "app.py",
            "--server.headless",
            "true",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--browser.gatherUsageStats",
            "false",
        ],
        cwd=ROOT,
        # two slots: the two tiny runs train side by side, one core each
        env={**os.environ, "CBAL_CACHE": str(store.root), runner.ENV_MAX: "2"},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _until("the Streamlit server", lambda: proc.poll() is not None or _healthy(url), 60)
        assert proc.poll() is None, (tmp_path / "streamlit.log").read_text()[-3000:]
        yield url, store
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()
        for info in store.list_runs():  # no worker outlives the test
            runner.cancel(store, info.run_id)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        f"--user-data-dir={tempfile.mkdtemp(dir=tmp_path, prefix='chromium-')}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _set(driver: object, label: str, value: str) -> None:
    """Type ``value`` into the input labelled ``label`` and commit it (Streamlit reruns)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    box = _until(
        f"the {label!r} input",
        lambda: driver.find_elements(By.CSS_SELECTOR, f'input[aria-label="{label}"]'),  # type: ignore[attr-defined]
        60,
    )[0]  # type: ignore[index]
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(value, Keys.ENTER)
    _until(
        f"{label} = {value}",
        lambda: box.get_attribute("value") == value,
        20,
    )


def _svg_texts(driver: object, needle: str) -> list[object]:
    from selenium.webdriver.common.by import By

    return driver.find_elements(  # type: ignore[attr-defined,no-any-return]
        By.XPATH, f"//*[name()='text'][contains(., '{needle}')]"
    )


def test_launch_a_tiny_run_in_the_browser_and_watch_it(server, browser) -> None:
    from selenium.webdriver.common.by import By

    url, store = server
    browser.get(url)
    # the first paint can be the skeleton: wait for the real form
    for label, value in [
        ("Initial labeled set", "40"),
        ("Budget per cycle", "20"),
        ("Cycles", "2"),
        ("Epochs per cycle", "8"),
        ("LR milestones (epochs)", "6"),
    ]:
        _set(browser, label, value)

    def launch_button() -> object:
        for b in browser.find_elements(By.CSS_SELECTOR, "button"):
            if b.text.startswith("Launch 2 run") and b.is_enabled():
                return b
        return None

    button = _until("an enabled Launch button", launch_button, 60)
    ARTIFACTS.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "dashboard_form.png"))
    button.click()  # type: ignore[attr-defined]
    _until("two runs in the store", lambda: len(store.list_runs()) == 2, 30)

    # the axis title, not the figure's title: an empty placeholder figure has that too
    _until("the accuracy chart", lambda: _svg_texts(browser, "Labeled images (count)"), 150)
    _until("an L1 title", lambda: _svg_texts(browser, "L1 ="), 150)

    def finished_page() -> bool:
        """Both runs done and every figure of the live view drawn (they redraw once more)."""
        return (
            browser.page_source.count("done in") >= 2
            and len(browser.find_elements(By.CSS_SELECTOR, '[data-testid="stPlotlyChart"]')) == 4
            and bool(_svg_texts(browser, "Labeled images (count)"))
            and bool(_svg_texts(browser, "L1 ="))
            and bool(browser.find_elements(By.CSS_SELECTOR, '[data-testid="stImage"] img'))
        )

    _until("both runs done and drawn", finished_page, 150)
    assert not browser.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')

    for _ in range(2):  # the whole page in one shot; measured again once the layout settles
        height = browser.execute_script(
            "const m = document.querySelector('[data-testid=\"stMainBlockContainer\"]')"
            " || document.body; return m.getBoundingClientRect().height;"
        )
        browser.set_window_size(1400, min(int(height) + 150, 6000))
        _until("the page after resizing", finished_page, 30)
    assert browser.save_screenshot(str(ARTIFACTS / "dashboard_live.png"))
