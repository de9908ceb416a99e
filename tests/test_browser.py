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
from urllib.parse import urlparse

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
    from selenium.common.exceptions import StaleElementReferenceException

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = check()
        except StaleElementReferenceException:  # Streamlit redrew the element: look again
            result = None
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


def _set(driver: object, label: str, value: str, shown: str | None = None) -> None:
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
    _until(f"{label} = {value}", lambda: box.get_attribute("value") == (shown or value), 20)


def _svg_texts(driver: object, needle: str) -> list[object]:
    from selenium.webdriver.common.by import By

    return driver.find_elements(  # type: ignore[attr-defined,no-any-return]
        By.XPATH, f"//*[name()='text'][contains(., '{needle}')]"
    )


def _button(driver: object, text: str, enabled: bool = True) -> object:
    from selenium.webdriver.common.by import By

    for b in driver.find_elements(By.CSS_SELECTOR, "button"):  # type: ignore[attr-defined]
        if b.text.startswith(text) and b.is_enabled() == enabled:
            return b
    return None


def _page(driver: object, name: str) -> None:
    """Go to a page through the sidebar (a client-side switch: the session stays)."""
    from selenium.webdriver.common.by import By

    links = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stSidebarNavLink"]')  # type: ignore[attr-defined]
    (link,) = [a for a in links if urlparse(a.get_attribute("href")).path.strip("/") == name]
    link.click()


def _shoot(driver: object, name: str, whole: bool = False) -> None:
    """A screenshot in test-artifacts/ (and docs/ with CBAL_DOCS_SCREENSHOTS=1); ``whole``: the
    page's full height, measured again once the layout settles."""
    if whole:
        for _ in range(2):
            height = driver.execute_script(  # type: ignore[attr-defined]
                "const m = document.querySelector('[data-testid=\"stMainBlockContainer\"]')"
                " || document.body; return m.getBoundingClientRect().height;"
            )
            driver.set_window_size(1400, min(int(height) + 150, 6000))  # type: ignore[attr-defined]
            time.sleep(1.5)
    ARTIFACTS.mkdir(exist_ok=True)
    assert driver.save_screenshot(str(ARTIFACTS / name))  # type: ignore[attr-defined]
    if DOCS:
        shutil.copy(ARTIFACTS / name, ROOT / "docs" / name)
    if whole:
        driver.set_window_size(1400, 1000)  # type: ignore[attr-defined]


# CBAL_DOCS_SCREENSHOTS=1: a real digits comparison (the preset's sizes, two seeds) whose
# screenshots replace those in docs/; by default a tiny one, screenshots in test-artifacts/.
DOCS = os.environ.get("CBAL_DOCS_SCREENSHOTS") == "1"
TINY_FORM = [
    ("Initial labeled set", "40"),
    ("Budget per cycle", "20"),
    ("Cycles", "2"),
    ("Epochs per cycle", "8"),
    ("LR milestones (epochs)", "6"),
]
RUN_S = 900 if DOCS else 150


def _charts(driver: object) -> list[object]:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, '[data-testid="stPlotlyChart"]')  # type: ignore[attr-defined,no-any-return]


def _rejected_field_keeps_launch_disabled(browser: object) -> None:
    from selenium.webdriver.common.by import By

    _set(browser, "Imbalance factor (IF)", "2", "2.000")
    _until("the IF error", lambda: "Imbalance factor (IF)" in _alerts(browser), 30)
    assert "in (0, 1]" in _alerts(browser)
    _until("a disabled Launch button", lambda: _button(browser, "Launch", enabled=False), 30)
    assert not _button(browser, "Launch", enabled=True)
    assert not browser.find_elements(By.XPATH, "//*[contains(text(), 'Press Enter to apply')]")  # type: ignore[attr-defined]
    _set(browser, "Imbalance factor (IF)", "0.1", "0.100")


def _alerts(driver: object) -> str:
    from selenium.webdriver.common.by import By

    found = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stAlert"]')  # type: ignore[attr-defined]
    return "\n".join(a.text for a in found)


def test_launch_a_comparison_and_watch_it_on_every_page(server, browser) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    url, store = server
    browser.get(url)
    # the first paint can be the skeleton: _set waits for the real form
    for label, value in [] if DOCS else TINY_FORM:
        _set(browser, label, value)
    if DOCS:
        _set(browser, "Seeds", "0, 1")
    _rejected_field_keeps_launch_disabled(browser)
    n = 4 if DOCS else 2
    button = _until("an enabled Launch button", lambda: _button(browser, f"Launch {n} run"), 60)
    _shoot(browser, "dashboard_form.png")
    button.click()  # type: ignore[attr-defined]
    _until("the runs in the store", lambda: len(store.list_runs()) == n, 30)

    # the axis title, not the figure's title: an empty placeholder figure has that too
    _until("the accuracy chart", lambda: _svg_texts(browser, "Labeled images (count)"), RUN_S)
    browser.refresh()  # a new session: the live view comes back from the address
    _until("the live view after a refresh", lambda: _svg_texts(browser, "Labeled images"), 60)
    first = _charts(browser)[0].rect
    assert first["y"] + first["height"] <= 1000 and first["width"] >= 440  # on the first screen

    _page(browser, "Runs")
    _until("the runs table", lambda: "entropy-cb" in _table(browser), 60)
    picker = browser.find_element(
        By.CSS_SELECTOR, '[data-testid="stMultiSelect"] input[aria-label*="Runs to compare"]'
    )
    chosen_id = next(i.run_id for i in store.list_runs() if i.config.strategy == "entropy-cb")
    picker.click()
    picker.send_keys(chosen_id, Keys.ENTER)
    ActionChains(browser).send_keys(Keys.ESCAPE).perform()  # close the menu, as a user does
    _until("the comparison", lambda: "Comparison" in browser.page_source, 60)
    # the rows refresh by themselves until every run is done; the chosen run stays chosen
    _until("every row done", lambda: _table(browser).count("\ndone\n") == n, RUN_S)
    chips = browser.find_elements(By.CSS_SELECTOR, '[data-testid="stMultiSelect"] [data-tag]')
    chosen = {c.get_attribute("aria-label") for c in chips} - {None, ""}
    assert [chosen_id in c for c in chosen] == [True], chosen
    assert "Comparison" in browser.page_source
    _shoot(browser, "dashboard_runs.png")

    _page(browser, "")

    def finished_page() -> bool:
        """Every run done and every figure of the live view drawn (they redraw once more)."""
        return (
            f"{n} run(s): {n} done" in browser.page_source
            and len(_charts(browser)) == 4
            and bool(_svg_texts(browser, "Labeled images (count)"))
            and bool(_svg_texts(browser, "L1 ="))
            and bool(browser.find_elements(By.CSS_SELECTOR, '[data-testid="stImage"] img'))
        )

    _until("the finished live view", finished_page, 60)
    assert not browser.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
    _shoot(browser, "dashboard.png")  # the README's picture: the first screen
    _shoot(browser, "dashboard_live.png", whole=True)

    browser.find_element(By.XPATH, "//label[contains(., 'Presentation mode')]").click()
    _until(
        "no form in presentation mode", lambda: "Launch a comparison" not in browser.page_source, 30
    )
    _until("large type", lambda: _svg_texts(browser, "Labeled images (count)"), 30)
    size = _svg_texts(browser, "Labeled images (count)")[0].value_of_css_property("font-size")  # type: ignore[attr-defined]
    assert float(size.removesuffix("px")) >= 22, size  # 14 px without presentation mode
    _shoot(browser, "dashboard_presentation.png")
    browser.find_element(By.XPATH, "//label[contains(., 'Presentation mode')]").click()

    _explorer_timings(browser)


def _table(driver: object) -> str:
    from selenium.webdriver.common.by import By

    frames = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stDataFrame"] td')  # type: ignore[attr-defined]
    return "\n" + "\n".join(td.get_attribute("textContent") for td in frames) + "\n"


# Elements of the λ explorer outside its λ fragment: the run picker and the λ path's chart.
OUTSIDE_FRAGMENT = ("Run (finished or running)", "over λ")


def _watch_stale(browser: object) -> None:
    """Record the text of every element Streamlit marks stale (a rerun has not redrawn it
    yet) from now on: a rerun of the whole page marks elements outside a fragment too."""
    browser.execute_script(  # type: ignore[attr-defined]
        """
        window.cbalStale = new Set();
        const seen = () => document.querySelectorAll('[data-stale="true"]').forEach(
            (el) => window.cbalStale.add(el.textContent.slice(0, 400)));
        new MutationObserver(seen).observe(document.body,
            {subtree: true, childList: true, attributes: true, attributeFilter: ['data-stale']});
        """
    )


def _went_stale(browser: object, texts: tuple[str, ...]) -> list[str]:
    """The recorded stale elements that contain one of ``texts``."""
    stale = browser.execute_script("return Array.from(window.cbalStale)")  # type: ignore[attr-defined]
    return [s for s in stale if any(t in s for t in texts)]


def _watch_inputs(browser: object) -> None:
    """Record, in the page's clock (ms), the last Enter key and the last click, and each time a
    figure title appears in the page: what a user waits for, without WebDriver's latency."""
    browser.execute_script(  # type: ignore[attr-defined]
        """
        window.cbalInput = {};
        window.cbalTitles = [];
        const at = (what) => (e) => {
          if (what !== 'enter' || e.key === 'Enter') window.cbalInput[what] = performance.now(); };
        document.addEventListener('keydown', at('enter'), true);
        document.addEventListener('click', at('click'), true);
        let shown = new Set();
        new MutationObserver(() => {
          const now = new Set(Array.from(document.querySelectorAll('text.gtitle'),
                                         (t) => t.textContent));
          now.forEach((t) => shown.has(t) || window.cbalTitles.push([t, performance.now()]));
          shown = now;
        }).observe(document.body, {subtree: true, childList: true, characterData: true});
        """
    )


def _waited(browser: object, since: str, title: str) -> float:
    """Seconds from the last ``since`` input ('enter' or 'click') to the first figure title
    containing ``title`` that appeared after it."""
    start, titles = browser.execute_script("return [window.cbalInput, window.cbalTitles]")  # type: ignore[attr-defined]
    began = start[since]
    return (min(t for text, t in titles if title in text and t >= began) - began) / 1000


def _idle(browser: object) -> None:
    """Wait until no script run is in progress (the status widget's Stop button is gone)."""
    from selenium.webdriver.common.by import By

    _until(
        "the page to finish running",
        lambda: not browser.find_elements(By.CSS_SELECTOR, '[data-testid="stStatusWidget"] button'),  # type: ignore[attr-defined]
        60,
    )


def _explorer_timings(browser: object) -> None:
    """The λ explorer: a λ change (its fragment) and a cycle switch (the page), each timed from
    the Enter key or the click to the new histogram title, in the page's clock; printed for
    the report, never asserted."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    _page(browser, "Lambda_explorer")
    _until("the explorer's histograms", lambda: _svg_texts(browser, ": cycle"), 90)
    # the run's solver, binary, is one the page asks before solving at every λ of the path
    ask = _until("the λ path's button", lambda: _button(browser, "Re-select at "), 60)
    ask.click()  # type: ignore[attr-defined]
    _until("the λ path", lambda: _svg_texts(browser, "over λ"), 90)
    _idle(browser)  # a λ typed while the page still runs would be lost in its rerun
    title = _svg_texts(browser, ": cycle")[0].text  # type: ignore[attr-defined]
    cycle = title.rsplit("cycle ", 1)[1]
    _watch_stale(browser)
    _watch_inputs(browser)
    timings = []
    for lam in ("5", "0.05", "50", "7", "0.3"):
        box = browser.find_element(By.CSS_SELECTOR, 'input[aria-label="exact λ"]')  # type: ignore[attr-defined]
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys(lam, Keys.ENTER)
        shown = f"at λ = {lam}: cycle"
        _until(f"λ = {lam}", lambda shown=shown: _svg_texts(browser, shown), 30, 0.01)
        timings.append(_waited(browser, "enter", shown))
    assert _svg_texts(browser, "over λ")  # the λ path, outside the fragment, still drawn
    # only the fragment reran: nothing outside it (the run picker, the λ path) went stale
    assert not _went_stale(browser, OUTSIDE_FRAGMENT), _went_stale(browser, OUTSIDE_FRAGMENT)
    switches = []
    for other in ("0" if cycle != "0" else "1", cycle):
        picker = browser.find_element(By.CSS_SELECTOR, 'input[aria-label*="Cycle"]')  # type: ignore[attr-defined]
        picker.click()
        option = _until(
            "the cycle options",
            lambda other=other: [
                o
                for o in browser.find_elements(By.CSS_SELECTOR, '[role="option"]')
                if o.text.strip() == other
            ],
            30,
        )[0]  # type: ignore[index]
        option.click()
        shown = f": cycle {other}"
        _until(f"cycle {other}", lambda shown=shown: _svg_texts(browser, shown), 60, 0.01)
        switches.append(_waited(browser, "click", shown))
        _idle(browser)
    # the control: a cycle switch reruns the page, and the observer sees it
    assert _went_stale(browser, OUTSIDE_FRAGMENT)
    print(
        "\nλ explorer in the browser: λ change (Enter → new histogram) "
        f"{', '.join(f'{t * 1000:.0f} ms' for t in timings)}; cycle switch (click → new "
        f"histogram) {', '.join(f'{t * 1000:.0f} ms' for t in switches)}"
    )
    _shoot(browser, "explorer.png", whole=True)
