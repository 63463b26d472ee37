"""The dashboard in a real browser: Debian's chromium driven by Playwright against ``streamlit run app.py``.

Opens every page, compares a pair, uploads a CSV and downloads the scored file, opens Projection, and saves a
screenshot of each page to ``docs/screenshots/<page>.png`` (the README shows them). Skipped when
/usr/bin/chromium is missing, unless ``SIMDASH_REQUIRE_BROWSER=1`` (then it fails). Never downloads a browser.
"""

from __future__ import annotations

import csv
import io
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHOTS = REPO / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
#: model loading, corpus embedding and the first UMAP on two shared CPU cores.
SLOW_MS = 240_000

pytestmark = [pytest.mark.browser, pytest.mark.slow]

if not os.path.exists(CHROMIUM):
    if os.environ.get("SIMDASH_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{CHROMIUM} is missing and SIMDASH_REQUIRE_BROWSER=1 (apt-get install chromium)", pytrace=False)
    pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)", allow_module_level=True)

sync_api = pytest.importorskip("playwright.sync_api")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """``streamlit run app.py`` on a free port; yields its base URL and always stops it."""
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        t0 = time.perf_counter()
        while True:
            try:
                with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.perf_counter() - t0 > 60:
                out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
                pytest.fail(f"streamlit did not become healthy within 60 s:\n{out[-3000:]}")
            time.sleep(0.5)
        print(f"server healthy after {time.perf_counter() - t0:.1f} s")
        yield base
    finally:
        # The server's whole process group: streamlit may have started helper processes.
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1500, "height": 1800}, accept_downloads=True)
    p = ctx.new_page()
    p.set_default_timeout(SLOW_MS)
    yield p
    ctx.close()


def settle(page) -> None:
    """Wait until the script run has finished (Streamlit's "Running…" widget is gone) and charts have drawn."""
    page.wait_for_selector('[data-testid="stApp"]')
    page.wait_for_timeout(1500)
    deadline = time.perf_counter() + SLOW_MS / 1000
    while time.perf_counter() < deadline:
        running = page.locator('[data-testid="stStatusWidget"]').count()
        spinners = page.locator('[data-testid="stSpinner"]').count()
        if not running and not spinners:
            break
        page.wait_for_timeout(500)
    page.wait_for_timeout(1500)


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def model_keys(page) -> list[str]:
    """The models selected in the sidebar (the multiselect's chips)."""
    chips = page.locator('[data-testid="stSidebar"] [data-testid="stMultiSelect"] span[data-tag][aria-label]')
    return [c.get_attribute("aria-label").split(" · ")[0] for c in chips.all()]


def test_compare_one_pair_one_score_per_model(server, page):
    t0 = time.perf_counter()
    page.goto(f"{server}/?a=A+man+is+playing+a+guitar.&b=Someone+plays+an+instrument.")
    page.wait_for_selector("text=Compare pairs")
    print(f"first page drawn after {time.perf_counter() - t0:.1f} s")
    settle(page)
    keys = model_keys(page)
    assert keys == ["w2v", "bert", "sbert", "esim"]
    # One bar trace per model in the chart; a failed model shows its error instead of a number.
    chart = page.locator('[data-testid="stPlotlyChart"]').first
    chart.wait_for()
    print(f"scores of a fresh server's first pair shown after {time.perf_counter() - t0:.1f} s")
    legend = [t.text_content() for t in chart.locator(".legendtext").all()]
    assert len(legend) == len(keys)
    errors = page.locator('[data-testid="stAlert"]:has-text("failed")').count()
    bars = chart.locator("g.trace.bars").count()
    assert bars == len(keys)
    bar_texts = [t.text_content() for t in chart.locator("g.trace.bars text").all()]
    numbers = [t for t in bar_texts if t != "n/a"]
    assert len(numbers) + errors >= len(keys)
    assert len(numbers) >= len(keys) - errors
    assert "Not raw BERT" in page.content()
    # the default page, as a first-time visitor sees it
    page.goto(f"{server}/")
    settle(page)
    page.locator('[data-testid="stPlotlyChart"]').first.wait_for()
    shot(page, "compare")


def test_compare_preset_dark_theme(server, browser):
    ctx = browser.new_context(viewport={"width": 1500, "height": 1800}, color_scheme="dark")
    p = ctx.new_page()
    p.set_default_timeout(SLOW_MS)
    try:
        p.goto(f"{server}/?preset=Word+order&pooling=cls")
        settle(p)
        p.locator('[data-testid="stPlotlyChart"]').first.wait_for()
        # URL-bound widgets keep their non-default values in the address a person would copy
        assert "preset=Word+order" in p.url and "pooling=cls" in p.url
        shot(p, "compare_dark")
    finally:
        ctx.close()


def test_batch_upload_and_download(server, page, tmp_path):
    src = tmp_path / "pairs.csv"
    with open(src, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["sentence1", "sentence2", "score"])
        w.writerow(["The cat sits on the mat.", "A cat is sitting on a mat.", 4.8])
        w.writerow(["He plays football.", "The stock market fell.", 0.2])
        w.writerow(["=1+1", "A formula-looking cell.", 1.0])
    page.goto(f"{server}/batch")
    settle(page)
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(src))
    page.get_by_role("button", name="Score 3 pairs").wait_for()
    settle(page)
    page.get_by_role("button", name="Score 3 pairs").click()
    page.get_by_role("button", name="Download all 3 rows").wait_for()
    settle(page)
    with page.expect_download() as dl:
        page.get_by_role("button", name="Download all 3 rows").click()
    data = Path(dl.value.path()).read_bytes().decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(data)))
    assert len(rows) == 3
    keys = model_keys(page)
    assert all(f"score_{k}" in rows[0] for k in keys)
    assert rows[2]["sentence1"] == "'=1+1"  # formula cells are escaped in downloads
    assert page.locator("text=Agreement with 'score'").count() == 1
    shot(page, "batch")


def test_projection_one_plot_per_model(server, page):
    page.goto(f"{server}/projection")
    settle(page)
    keys = model_keys(page)
    page.locator('[data-testid="stPlotlyChart"]').first.wait_for()
    settle(page)
    plots = page.locator('[data-testid="stPlotlyChart"]').count()
    failed = page.locator('[data-testid="stAlert"]:has-text("failed")').count()
    assert plots + failed == len(keys)
    assert plots >= 1
    shot(page, "projection")


@pytest.mark.parametrize("name", ["neighbours", "models"])
def test_other_pages_open(server, page, name):
    page.goto(f"{server}/{name}")
    settle(page)
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.locator("h1").count() >= 1
    shot(page, name)


def test_evaluation_lab_on_the_demo_set(server, page):
    """Pick the built-in labelled demo set: every model gets a metrics row and the charts draw."""
    page.goto(f"{server}/evaluate")
    settle(page)
    page.get_by_text("demo set", exact=False).first.click()
    settle(page)
    page.get_by_role("button", name="Evaluate 200 pairs").click()
    # The evaluation runs as a background job whose progress the page polls: wait for its result.
    deadline = time.perf_counter() + SLOW_MS / 1000
    body = ""
    while time.perf_counter() < deadline:
        body = page.locator('[data-testid="stMain"]').inner_text()
        if "pairs scored" not in body and ("Spearman" in body or "spearman" in body):
            break
        page.wait_for_timeout(1000)
    settle(page)
    assert page.locator('[data-testid="stException"]').count() == 0
    assert "Spearman" in body or "spearman" in body
    assert page.locator(".js-plotly-plot").count() >= 1
    shot(page, "evaluate")
