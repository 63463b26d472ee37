"""How soon a visitor sees the first page complete, and how fast a warm rerun of the mixed-language preset is.

Run from the repo root (needs Debian's chromium and playwright, as the browser test)::

    python bench/bench_first_page.py

For two states of the persistent cache (a new, empty cache folder; then the same folder again, as a restarted
server finds it), starts ``streamlit run app.py`` as the README does, waits until it answers its health check,
then opens the Compare page in a headless browser and times until the page is complete (the one-sentence verdict
is drawn and the app has stopped running). Then opens the mixed-language preset and times it twice: its first
run and a reload (a new session). Last, a warm rerun of the mixed preset in one session (every model in memory,
every score cached), timed as the server's script run (AppTest; the browser's drawing is the visitor's machine's). Targets (issue 16): first page <= 5 s after the server answers; warm rerun of the mixed
preset <= 1 s.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
MIXED = "中文: mixed Chinese-English (中英混合)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(port: int, cache: str) -> subprocess.Popen:
    env = dict(os.environ, HF_HUB_OFFLINE="1", SIMDASH_CACHE_DIR=cache)
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                             "--server.headless", "true"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    end = time.monotonic() + 120
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("streamlit did not start")


def complete(page, timeout_s: float = 300) -> None:
    """Wait until the verdict is drawn and the app is no longer running."""
    page.wait_for_selector('[data-testid="stAlertContentSuccess"]', timeout=timeout_s * 1000)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')",
                           timeout=timeout_s * 1000)


def timed(page, url: str) -> float:
    t0 = time.perf_counter()
    page.goto(url)
    complete(page)
    return time.perf_counter() - t0


def warm_reruns(n: int = 5) -> list[float]:
    """Seconds of the Compare page's script on the mixed preset, rerun in one session with every model in memory
    and every score cached (Streamlit's AppTest, in this process: the server's side of a rerun, without the
    browser's drawing)."""
    from streamlit.testing.v1 import AppTest

    os.environ["SIMDASH_WARM"] = "0"
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    at.query_params["preset"] = MIXED
    at.run()
    at.switch_page("pages/compare.py").run()  # first run: loads and scores
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        at.run()
        out.append(time.perf_counter() - t0)
        assert not at.exception, [e.value for e in at.exception]
    return out


def main() -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="simdash-bench-") as cache, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        for state in ("empty cache", "warm persistent cache"):
            port = free_port()
            proc = start(port, cache)
            try:
                page = browser.new_context(viewport={"width": 1400, "height": 1600}).new_page()
                base = f"http://127.0.0.1:{port}"
                first = timed(page, f"{base}/")
                mixed_url = f"{base}/?preset={urllib.parse.quote(MIXED)}"
                mixed = timed(page, mixed_url)
                reload = timed(page, mixed_url)
                print(f"{state:<22} first page {first:5.1f} s (target <= 5)   mixed preset {mixed:5.1f} s   "
                      f"reload (a new session) {reload:5.2f} s", flush=True)
            finally:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)
        browser.close()
    runs = warm_reruns()
    print(f"warm rerun of the mixed preset (script time, median of {len(runs)}): {sorted(runs)[len(runs) // 2]:.2f} s "
          "(target <= 1)")


if __name__ == "__main__":
    main()
