"""The explorer page end to end in a real browser: Debian's headless Chromium via Playwright.

The server runs in a thread on a free port of 127.0.0.1; the browser is the system's
``/usr/bin/chromium`` (no browser is downloaded at test time). Screenshots are saved in
``test-artifacts/``. Without Chromium these tests skip and say how to install it — except
when the environment variable ``CI`` is set, where a missing browser is a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
INSTALL = "apt-get install chromium chromium-driver"


def _unavailable(reason: str) -> None:
    """Skip with how to fix it; under CI (the CI environment variable set) fail instead."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so the browser tests are mandatory)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def server_url(model):
    """The explorer served by uvicorn in a thread on a free port of 127.0.0.1."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)) and not shutil.which("chromium"):
        _unavailable(f"Chromium is not installed at {CHROMIUM}; install it with: {INSTALL}")
    for module in ("fastapi", "uvicorn", "playwright"):
        try:
            __import__(module)
        except ImportError:
            _unavailable(f"the browser tests need {module}: pip install \"alpnet[test]\"")
    import uvicorn

    from alpnet.server import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(model), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(600):
        if server.started:
            break
        time.sleep(0.05)
    assert server.started, "the explorer did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser_context(server_url, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    executable = str(CHROMIUM) if CHROMIUM.is_file() else shutil.which("chromium")
    profile = tmp_path_factory.mktemp("chromium-profile")  # an empty user-data-dir
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile), executable_path=executable, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1366, "height": 900})
        yield context
        context.close()


@pytest.fixture
def page(browser_context, server_url):
    page = browser_context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server_url + "/")
    page.wait_for_selector("body[data-ready=true]", timeout=30_000)
    yield page
    page.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def _rendered(page) -> int:
    return int(page.get_attribute("#results", "data-rendered") or 0)


def _wait_redraw(page, before: int) -> None:
    # a function, not a string: the page's Content-Security-Policy forbids eval
    page.wait_for_function("(n) => Number(document.getElementById('results').dataset.rendered || 0) > n",
                           arg=before, timeout=60_000)


_SAME_CASE = """(want) => {
    const canon = (x) => (x && typeof x === 'object' && !Array.isArray(x))
        ? Object.keys(x).sort().map((k) => JSON.stringify(k) + ':' + canon(x[k])).join(',') : JSON.stringify(x);
    const shown = document.getElementById('results').dataset.case;
    return shown !== undefined && canon(JSON.parse(shown)) === canon(want)
        && document.getElementById('status').textContent === 'Up to date.';
}"""


def _wait_for_case(page, case: dict) -> None:
    """Wait until the answers on show are those of ``case`` (typing triggers several redraws)."""
    page.wait_for_function(_SAME_CASE, arg=case, timeout=60_000)


def _posteriors(page) -> dict[str, float]:
    return {li.get_attribute("data-cause"): float(li.get_attribute("data-posterior"))
            for li in page.query_selector_all("#posterior li")}


def _screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def test_enter_a_case_see_the_leading_cause_and_toggle_a_finding(page, model, server_url):
    import httpx

    assert "not for clinical decisions" in page.inner_text("#disclaimer")
    # type a case as a user would: the answers redraw on input
    n = _rendered(page)
    page.fill("#f-patient-age", "67")
    page.select_option("#f-patient-sex", "female")
    page.fill("#f-labs-alp", "390")
    page.fill("#f-labs-ggt", "240")
    _wait_redraw(page, n)
    case = {"patient": {"age": 67, "sex": "female"}, "labs": {"alp": "390 U/L", "ggt": "240 U/L"}}
    _wait_for_case(page, case)
    expected = httpx.post(server_url + "/diagnose", json=case).json()
    lead = expected["leading_cause"]
    assert page.get_attribute("#leading", "data-cause") == lead
    assert model.label(lead).split(" (")[0] in page.inner_text("#leading")
    bars = _posteriors(page)
    assert set(bars) == set(model.causes)
    assert bars == pytest.approx(expected["posterior"], abs=1e-12)
    assert page.query_selector_all("#next-table tbody tr"), "no ranked test shown"
    assert page.query_selector_all("#explain-table tbody tr"), "no explanation shown"

    # one-click what-if: jaundice not known -> present
    before = _posteriors(page)
    n = _rendered(page)
    page.click('#what-if-toggles button[data-key="symptoms.jaundice"]')
    _wait_redraw(page, n)
    _wait_for_case(page, {**case, "symptoms": {"jaundice": True}})
    assert page.input_value("#f-symptoms-jaundice") == "true"
    assert "Jaundice" in page.inner_text("#what-if-result")
    after = _posteriors(page)
    assert after != before
    assert max(abs(after[c] - before[c]) for c in before) > 1e-3
    _screenshot(page, "explorer-case-and-what-if.png")


def test_load_a_teaching_case(page, model, server_url):
    import httpx

    n = _rendered(page)
    page.select_option("#teaching-case", "paget")
    page.click("#load-case")
    _wait_redraw(page, n)
    teaching = httpx.get(server_url + "/cases/paget").json()
    assert teaching["about"]["title"] in page.inner_text("#case-about")
    assert page.input_value("#f-patient-age") == str(teaching["case"]["patient"]["age"])
    assert page.input_value("#f-tests-xray") == teaching["case"]["tests"]["xray"]
    expected = httpx.post(server_url + "/diagnose", json=teaching["case"]).json()
    assert page.get_attribute("#leading", "data-cause") == expected["leading_cause"]
    _screenshot(page, "explorer-teaching-case.png")


def test_bad_value_shows_the_error_naming_the_key(page):
    page.fill("#f-patient-age", "50")
    page.fill("#f-labs-alp", "300")
    n = _rendered(page)
    page.fill("#f-labs-ggt", "lots")
    _wait_redraw(page, n)
    page.wait_for_selector("#error:not([hidden])", timeout=30_000)
    assert "labs.ggt" in page.inner_text("#error")
    assert page.get_attribute("#f-labs-ggt", "aria-invalid") == "true"


def test_every_control_is_labelled_and_reachable_by_keyboard(page):
    unlabelled = page.evaluate("""() => [...document.querySelectorAll('input, select, button')]
        .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.textContent.trim())
        .map(el => el.id || el.outerHTML)""")
    assert unlabelled == []
    # Tab from the top reaches the teaching-case loader and then the form
    page.keyboard.press("Tab")
    seen = []
    for _ in range(8):
        page.keyboard.press("Tab")
        seen.append(page.evaluate("document.activeElement.id"))
    assert "teaching-case" in seen and "load-case" in seen
    page.focus("#teaching-case")
    page.keyboard.press("ArrowDown")  # choose a case with the keyboard alone
    n = _rendered(page)
    page.focus("#load-case")
    page.keyboard.press("Enter")
    _wait_redraw(page, n)
    assert not page.is_hidden("#case-about")


@pytest.mark.parametrize("width", [390, 1920])
def test_phone_and_projector_widths(page, width):
    page.set_viewport_size({"width": width, "height": 900})
    page.select_option("#teaching-case", "paget")
    n = _rendered(page)
    page.click("#load-case")
    _wait_redraw(page, n)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"the page scrolls sideways by {overflow}px at {width}px"
    assert page.is_visible("#disclaimer") and page.is_visible("#leading")
    _screenshot(page, f"explorer-{width}px.png")
