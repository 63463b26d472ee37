"""The dashboard in a real browser, as a demo's visitors use it: Debian's chromium driven by Playwright against
``streamlit run app.py``.

A fresh server is first reached by a deep link (``/batch``). A first visitor then opens every page and fills the
server's caches (compares a pair, uploads and downloads a batch, reranks, switches the projection to clusters,
evaluates the demo set). A second visitor, in a new browser session, opens every page, reloads each and toggles the
options that reuse cached results: no page may show an error box, an exception or a browser-console error, and no
table cell may cut its text, at 1,400 px and at a phone-like 820 px. Screenshots go to ``$SIMDASH_SCREENSHOTS``
(the README's come from ``SIMDASH_SCREENSHOTS=docs/screenshots``), else to a temporary folder.

Skipped when /usr/bin/chromium is missing, unless ``SIMDASH_REQUIRE_BROWSER=1`` (then it fails). Never downloads a
browser.
"""

from __future__ import annotations

import csv
import io
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
#: model loading, corpus embedding and the first UMAP on two shared CPU cores.
SLOW_MS = 300_000
PAGES = {"compare": "", "neighbours": "neighbours", "projection": "projection", "batch": "batch",
         "evaluate": "evaluate", "models": "models"}
#: what Streamlit says when a cached function touches an element created outside it (the bug this test guards).
CACHE_BUG = "a streamlit element is called on some layout block created outside the function"

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
def shots(tmp_path_factory) -> Path:
    """Where screenshots go: ``$SIMDASH_SCREENSHOTS`` when set (README refresh), else a temporary folder."""
    out = Path(os.environ.get("SIMDASH_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    out.mkdir(parents=True, exist_ok=True)
    print(f"screenshots in {out}")
    return out


def _start(cmd: list[str], health: str, log: Path, env: dict | None = None) -> subprocess.Popen:
    """Start a server process (its own process group) and wait until ``health`` answers 200."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                                                    **(env or {})},
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    t0 = time.perf_counter()
    while True:
        try:
            with urllib.request.urlopen(health, timeout=2) as r:
                if r.status == 200:
                    print(f"{cmd[2:4]} healthy after {time.perf_counter() - t0:.1f} s")
                    return proc
        except OSError:
            pass
        if proc.poll() is not None or time.perf_counter() - t0 > 120:
            _stop(proc)
            pytest.fail(f"{cmd} did not become healthy within 120 s:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.5)


def _stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _check_log(log: Path) -> None:
    text = log.read_text(errors="replace")
    print(text[-2000:])
    assert "Inotify" not in text, "the file watcher floods the log"
    assert "Traceback" not in text, text[-4000:]


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    """``streamlit run app.py`` as the README starts it, on a free port; yields its URL and always stops it."""
    port = _free_port()
    log = tmp_path_factory.mktemp("server") / "streamlit.log"
    base = f"http://127.0.0.1:{port}"
    proc = _start([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port)],
                  f"{base}/_stcore/health", log)
    try:
        yield base
    finally:
        _stop(proc)
        _check_log(log)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


class Visitor:
    """One browser session (its own cookies and Streamlit session), with the console errors it saw."""

    def __init__(self, browser, width: int = 1400, scheme: str = "light") -> None:
        self.ctx = browser.new_context(viewport={"width": width, "height": 1600}, accept_downloads=True,
                                       color_scheme=scheme)
        self.page = self.ctx.new_page()
        self.page.set_default_timeout(SLOW_MS)
        self.console: list[str] = []
        self.page.on("console", lambda m: self.console.append(m.text) if m.type == "error" else None)

    def open(self, server: str, path: str) -> object:
        self.page.goto(f"{server}/{path}")
        settle(self.page)
        return self.page

    def close(self) -> None:
        self.ctx.close()


def settle(page) -> None:
    """Wait until the script run has finished (Streamlit's "Running…" widget is gone), jobs too, and charts drew."""
    page.wait_for_selector('[data-testid="stApp"]')
    page.wait_for_timeout(1500)
    deadline = time.perf_counter() + SLOW_MS / 1000
    while time.perf_counter() < deadline:
        busy = (page.locator('[data-testid="stStatusWidget"]').count() + page.locator('[data-testid="stSpinner"]').count()
                + page.locator('button:has-text("Cancel")').count())
        if not busy:
            break
        page.wait_for_timeout(500)
    page.wait_for_timeout(1500)


def assert_healthy(v: Visitor, where: str) -> None:
    """No exception, no error box from the caching bug, no console error about broken figures."""
    page = v.page
    assert page.locator('[data-testid="stException"]').count() == 0, f"{where}: an exception is shown"
    body = page.locator('[data-testid="stMain"]').inner_text()
    assert CACHE_BUG not in body, f"{where}: {CACHE_BUG}"
    bad = [m for m in v.console if "Expected length" in m or "NaN" in m]
    assert not bad, f"{where}: console errors {bad[:3]}"


def assert_cells_fit(page, where: str, at_least: int = 1) -> None:
    """Every cell of a wrapping table shows its whole text (nothing cut, nothing scrolled away).

    At least ``at_least`` tables must be drawn first: with none on screen (a page still rendering) the check
    would pass without looking at anything.
    """
    tables = page.locator('[data-testid="stTable"] td')
    deadline = time.perf_counter() + SLOW_MS / 1000
    while page.locator('[data-testid="stTable"]').count() < at_least and time.perf_counter() < deadline:
        page.wait_for_timeout(250)
    assert page.locator('[data-testid="stTable"]').count() >= at_least, f"{where}: fewer than {at_least} tables drawn"
    tables.first.wait_for(state="visible")
    cut = page.evaluate("""() => [...document.querySelectorAll('[data-testid="stTable"] td')]
        .filter(td => td.scrollWidth > td.clientWidth + 2).map(td => td.innerText.slice(0, 40))""")
    assert not cut, f"{where}: table cells cut at their width: {cut[:5]}"
    wide = page.evaluate("""() => [...document.querySelectorAll('[data-testid="stTable"]')]
        .filter(t => t.scrollWidth > t.clientWidth + 2).length""")
    assert wide == 0, f"{where}: {wide} table(s) wider than the page"


def choose(page, label: str, option: str) -> None:
    """Pick ``option`` in the select box labelled ``label`` (as a person does: open it, click the option)."""
    page.get_by_role("combobox", name=label).click()
    page.get_by_role("option", name=option, exact=True).click()
    settle(page)


def model_keys(page) -> list[str]:
    """The models selected in the sidebar (the multiselect's chips)."""
    chips = page.locator('[data-testid="stSidebar"] [data-testid="stMultiSelect"] span[data-tag][aria-label]')
    return [c.get_attribute("aria-label").split(" · ")[0] for c in chips.all()]


def test_a_deep_link_on_a_fresh_server_opens_its_page(server, browser):
    """The very first request names a page: Streamlit must not run the pages/ file on its own."""
    v = Visitor(browser)
    try:
        page = v.open(server, "batch")
        assert page.locator("h1").first.inner_text() == "Batch scoring"
        page.get_by_role("button", name="Use an example file").click()  # the first click counts
        page.get_by_role("button", name="Remove the file").wait_for()
        assert page.locator('[data-testid="stSidebar"] [data-testid="stMultiSelect"]').count() == 1  # the sidebar too
        assert "Page not found" not in page.locator("body").inner_text()
        assert_healthy(v, "/batch first")
    finally:
        v.close()


def first_visitor_fills_the_caches(server, browser, shots: Path, tmp_path: Path) -> None:
    v = Visitor(browser)
    try:
        t0 = time.perf_counter()
        page = v.open(server, "?a=A+man+is+playing+a+guitar.&b=Someone+plays+an+instrument.")
        keys = model_keys(page)
        chart = page.locator('[data-testid="stPlotlyChart"]').first
        chart.wait_for()
        print(f"a fresh server's first pair scored after {time.perf_counter() - t0:.1f} s")
        assert chart.locator("g.trace.bars").count() == len(keys)
        assert_healthy(v, "compare")
        page = v.open(server, "")
        page.locator('[data-testid="stPlotlyChart"]').first.wait_for()
        page.screenshot(path=str(shots / "compare.png"), full_page=True)
        page = v.open(server, "neighbours?nb_reranker=esim")
        assert_healthy(v, "neighbours + rerank")
        page.screenshot(path=str(shots / "neighbours.png"), full_page=True)
        page = v.open(server, "projection?proj_colour=cluster")
        assert_healthy(v, "projection by cluster")
        page.screenshot(path=str(shots / "projection.png"), full_page=True)
        src = tmp_path / "pairs.csv"
        with open(src, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerows([["sentence1", "sentence2", "score"], ["The cat sits on the mat.", "A cat is sitting on a mat.", 4.8],
                         ["He plays football.", "The stock market fell.", 0.2], ["=1+1", "A formula-looking cell.", 1.0]])
        page = v.open(server, "batch")
        page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(src))
        page.get_by_role("button", name="Score 3 pairs").click()
        page.get_by_role("button", name="Download all 3 rows").wait_for()
        settle(page)
        with page.expect_download() as dl:
            page.get_by_role("button", name="Download all 3 rows").click()
        rows = list(csv.DictReader(io.StringIO(Path(dl.value.path()).read_bytes().decode("utf-8-sig"))))
        assert len(rows) == 3 and rows[2]["sentence1"] == "'=1+1"
        assert all({f"score_{k}", f"scored_by_{k}", f"warnings_{k}"} <= set(rows[0]) for k in keys)
        assert_healthy(v, "batch")
        page.screenshot(path=str(shots / "batch.png"), full_page=True)
        page = v.open(server, "evaluate")
        page.get_by_role("button", name="Evaluate 200 pairs").click()
        # a background job: its progress bar polls, then the page shows the verdict and the charts
        page.get_by_text(re.compile("separates similar from dissimilar|agrees best|too few to rank|within noise")).wait_for()
        settle(page)
        assert page.locator(".js-plotly-plot").count() >= 1
        assert_healthy(v, "evaluate")
        page.screenshot(path=str(shots / "evaluate.png"), full_page=True)
        page = v.open(server, "models")
        assert_healthy(v, "models")
        page.screenshot(path=str(shots / "models.png"), full_page=True)
    finally:
        v.close()


def test_every_visitor_sees_every_page_without_an_error(server, browser, shots, tmp_path):
    """A second visitor, after a first one filled the caches: every page, a reload, options that reuse results."""
    first_visitor_fills_the_caches(server, browser, shots, tmp_path)
    v = Visitor(browser)
    try:
        for name, path in PAGES.items():
            v.open(server, path)
            assert_healthy(v, f"second visitor, {name}")
            v.page.reload()
            settle(v.page)
            assert_healthy(v, f"second visitor, {name} reloaded")
        page = v.open(server, "neighbours")
        choose(page, "Rerank the union with", "esim")
        assert page.locator("text=candidates reranked by esim").count() >= 1
        assert_healthy(v, "second visitor, rerank chosen")
        page = v.open(server, "projection")
        page.get_by_text("cluster", exact=True).first.click()
        settle(page)
        assert_healthy(v, "second visitor, colour by cluster")
        page.reload()
        settle(page)
        assert_healthy(v, "second visitor, projection reloaded")
    finally:
        v.close()


@pytest.mark.parametrize("width", [1400, 820])
def test_texts_are_readable_at_desktop_and_phone_widths(server, browser, shots, width):
    v = Visitor(browser, width=width)
    try:
        page = v.open(server, "neighbours?nb_reranker=esim")
        assert_cells_fit(page, f"neighbours at {width}px", at_least=4)  # one top-k table per encoder
        page.screenshot(path=str(shots / f"neighbours_{width}.png"), full_page=True)
        page = v.open(server, "?preset=Negation")
        page.get_by_text("Why these scores?").wait_for()
        assert_cells_fit(page, f"compare at {width}px")
        page.screenshot(path=str(shots / f"compare_{width}.png"), full_page=True)
        assert_healthy(v, f"{width}px")
    finally:
        v.close()


def test_dark_theme_and_the_chinese_interface(server, browser, shots):
    v = Visitor(browser, scheme="dark")
    try:
        page = v.open(server, "?lang=zh&preset=Word+order&bert.pooling=cls")
        page.locator('[data-testid="stPlotlyChart"]').first.wait_for()
        assert "preset=Word+order" in page.url and "bert.pooling=cls" in page.url
        assert page.locator("h1").first.inner_text() == "句对比较"
        assert_healthy(v, "dark, zh")
        page.screenshot(path=str(shots / "compare_dark_zh.png"), full_page=True)
    finally:
        v.close()


def test_the_dashboard_as_a_client_of_a_model_server(browser, tmp_path):
    """``python -m backend serve`` holds the models; ``SIMDASH_BACKEND_URL`` makes the dashboard its client."""
    api, ui = _free_port(), _free_port()
    served = _start([sys.executable, "-m", "backend", "serve", "--port", str(api)], f"http://127.0.0.1:{api}/health",
                    tmp_path / "serve.log")
    try:
        dash = _start([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(ui)],
                      f"http://127.0.0.1:{ui}/_stcore/health", tmp_path / "dash.log",
                      {"SIMDASH_BACKEND_URL": f"http://127.0.0.1:{api}"})
        v = Visitor(browser)
        try:
            page = v.open(f"http://127.0.0.1:{ui}", "?preset=Negation")
            page.locator('[data-testid="stPlotlyChart"]').first.wait_for()
            assert page.locator('[data-testid="stTable"]').first.inner_text().count("0.") >= 5
            assert f"models served by http://127.0.0.1:{api}" in page.locator('[data-testid="stSidebar"]').inner_text()
            page = v.open(f"http://127.0.0.1:{ui}", "models")
            assert f"The models run on the backend server at http://127.0.0.1:{api}" in page.inner_text("body")
            assert_healthy(v, "dashboard as a client")
        finally:
            v.close()
            _stop(dash)
        _check_log(tmp_path / "dash.log")
    finally:
        _stop(served)


# -------------------------------------------------------------------------------------- the Chinese interface
#: an English phrase: three words of three letters or more in a row (words joined by commas are a list of the user's
#: own words, such as a warning's "unknown words ignored: a, b, c", not interface text).
ENGLISH_RUN = re.compile(r"[A-Za-z]{3,}(?: +[A-Za-z]{3,}){2,}")
#: names a Chinese page writes in Latin letters (models, methods, metrics, formats, units).
PROPER_NAMES = ["SBERT", "BERT", "GloVe", "ESIM", "UMAP", "MiniLM", "m3e", "PCA", "Jaccard", "Spearman", "Pearson",
                "ROC-AUC", "AUC", "MRR", "CSV", "TSV", "TXT", "UTF-8", "Excel", "STS-B", "Sentence-BERT",
                "sentence-transformers", "bert-as-service", "word2vec", "k-means", "jieba", "ONNX", "Parquet", "FAQ"]
#: Streamlit's own widget text, which an app cannot translate (the file uploader's drop zone).
STREAMLIT_TEXT = ["Drag and drop file here", "Drag and drop files here", "Browse files", "Limit 200MB per file"]
#: links, file names, paths and command lines: data, not interface words.
_DATA = re.compile(r"https?://\S+|\S+\.(?:csv|tsv|txt|parquet|toml|md|npy|onnx|json)\b|\S*/\S+|"
                   r"python -m backend[^，。；：\n]*")


def _pages_default(path: str, name: str) -> str:
    """A page's module-level string constant (the example a page opens with), read without running the page."""
    import ast

    for node in ast.parse((REPO / path).read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == name:
            return node.value.value
    raise AssertionError(f"{path} has no {name}")


def allowed_text() -> tuple[list[str], str]:
    """What a Chinese page may show in English: ``(names to strip, the user-side texts joined)``.

    Names: registry keys and labels (a label names a model, like a key), proper names. Texts a person reads as data:
    the presets' example pairs, the demo corpus, the pages' example queries, the Chinese FAQ example set. A run of
    English words is allowed when it lies inside one of those texts (also when a tab or title cuts it short)."""
    from backend.files.io import load_demo_corpus
    from backend.lab.presets import PRESETS
    from backend.registry import DEFAULT_REGISTRY, Registry

    reg = Registry.load(DEFAULT_REGISTRY)
    names = sorted({s.label for s in reg} | set(reg.keys()) | set(PROPER_NAMES), key=len, reverse=True)
    demo = load_demo_corpus()
    texts = [x for p in PRESETS.values() for pair in p.pairs for x in pair] + demo["text"].tolist()
    texts += demo["topic"].astype(str).tolist()
    texts += _pages_default("pages/neighbours.py", "DEFAULT_QUERIES").splitlines()
    texts.append(_pages_default("pages/projection.py", "DEFAULT_QUERY"))
    for path in (REPO / "backend" / "data").glob("faq_zh*.csv"):
        texts += path.read_text(encoding="utf-8").splitlines()
    return names, "\n".join(" ".join(x.split()) for x in texts)


def shown_text(page) -> str:
    """What a person reads: the main area, the sidebar and the charts' titles, axes and legends."""
    plots = page.evaluate("""() => [...document.querySelectorAll('.js-plotly-plot .main-svg text')]
        .map(e => e.textContent).join('\\n')""")
    return "\n".join([page.locator('[data-testid="stMain"]').inner_text(),
                      page.locator('[data-testid="stSidebar"]').inner_text(), plots])


def english_left(text: str, names: list[str], user_texts: str) -> list[str]:
    """The runs of English words in ``text`` that are neither names, data, nor part of the user-side texts."""
    for s in STREAMLIT_TEXT:
        text = text.replace(s, "¦")
    text = _DATA.sub("¦", text)
    for n in names:  # a name is cut out where it stands as a whole (w2v, not the w2v of w2v-zh)
        text = re.sub(rf"(?<![\w-]){re.escape(n)}(?![\w-])", "¦", text)
    runs = [m.group(0) for m in ENGLISH_RUN.finditer(text)]
    return sorted({r for r in runs if r not in user_texts})


def test_the_chinese_interface_shows_no_english_sentence(server, browser, shots):
    """Every page with ?lang=zh, once the default models answer: no run of three English words outside the names,
    the data and the user's own (example) sentences. Each page's leaked strings are reported together."""
    from urllib.parse import quote

    from backend.lab.presets import PRESETS
    from backend.registry import DEFAULT_REGISTRY, Registry

    names, user_texts = allowed_text()
    reg = Registry.load(DEFAULT_REGISTRY)
    zh_preset = next(n for n, p in PRESETS.items() if p.description_zh)
    visits = {
        "compare": "?lang=zh",
        "compare, a Chinese preset": f"?lang=zh&preset={quote(zh_preset)}",
        "compare, one mixed pair": f"?lang=zh&a={quote('今天天气很好。')}&b={quote('The weather is lovely today.')}",
        "neighbours, reranked": "neighbours?lang=zh&nb_reranker=esim",
        "neighbours, a lost upload": "neighbours?lang=zh&corpus_source=upload&corpus_file=mine.csv",
        "projection": "projection?lang=zh",
        "projection by cluster": "projection?lang=zh&proj_colour=cluster&corpus_source=demo-zh",
        "batch": "batch?lang=zh",
        "evaluate": "evaluate?lang=zh",
        "models": "models?lang=zh",
    }
    v = Visitor(browser)
    leaks: dict[str, list[str]] = {}
    try:
        page = v.open(server, "?lang=zh")
        page.locator('[data-testid="stPlotlyChart"]').first.wait_for()  # the default models have answered
        for i, (name, path) in enumerate(visits.items()):
            page = v.open(server, path)
            if name.startswith(("compare", "projection")):
                page.locator('[data-testid="stPlotlyChart"]').first.wait_for()
                settle(page)
            assert_healthy(v, f"zh, {name}")
            text = shown_text(page)
            assert re.search(r"[\u4e00-\u9fff]{4}", text), f"{name}: no Chinese on the page"
            if left := english_left(text, names, user_texts):
                leaks[name] = left
            page.screenshot(path=str(shots / f"zh_{i:02d}_{re.sub(r'[^a-z]+', '_', name.lower())}.png"), full_page=True)
            if name == "compare, a Chinese preset":
                # results carry the name of the model that produced them: sbert's Chinese pairs are m3e-small's
                main = page.locator('[data-testid="stMain"]').inner_text()
                assert reg["sbert-zh"].label in main, "the Chinese pairs' scores are not named by sbert-zh's label"
            if name == "neighbours, a lost upload":
                main = page.locator('[data-testid="stMain"]').inner_text()
                assert "mine.csv" in main and "请重新上传" in main, "a link's lost upload is not named"
                assert page.locator('[data-testid="stTable"]').count() >= 2  # the demo corpus answers meanwhile
                assert "corpus_source=upload" in page.url and "corpus_file=mine.csv" in page.url
    finally:
        v.close()
    assert not leaks, "English on the Chinese pages:\n" + "\n".join(f"{k}: {r}" for k, r in leaks.items())


def test_the_corpus_choice_is_in_the_url(server, browser):
    """Neighbours and Projection keep the corpus source in the link, whatever the interface language shows."""
    v = Visitor(browser)
    try:
        page = v.open(server, "projection?corpus_source=demo-zh&proj_colour=cluster")
        page.locator('[data-testid="stPlotlyChart"]').first.wait_for()
        assert page.get_by_role("radio", name=re.compile("demo corpus, Chinese")).is_checked()
        page = v.open(server, "neighbours?lang=zh")
        page.get_by_text("演示语料，英文", exact=False).first.click()
        settle(page)
        assert "corpus_source=demo-en" in page.url and "lang=zh" in page.url
        page.get_by_text("演示语料（", exact=False).first.click()  # the default: left out of the link
        settle(page)
        assert "corpus_source" not in page.url
        assert_healthy(v, "corpus in the URL")
    finally:
        v.close()
