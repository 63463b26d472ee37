"""Eight visitors at once: concurrent browser sessions doing Compare, Neighbours and Batch against one dashboard.

Starts ``streamlit run app.py`` on a free port, warms it with one visitor, then drives N sessions of Debian's
chromium at the same time (Playwright's async API; never downloads a browser). Each session repeats: pick another
Compare preset and wait for the chart, ask Neighbours a new query and wait for the tables, load the Batch page's
example file (or, with ``--upload N``, upload N rows of its own, different in every session), score it and wait
for the download. Prints every action's latency (p50, p95, max) and whether any page showed an error box; exits 1
when p95 is over the target or an error box appeared.

    python bench/bench_visitors.py [--sessions 8] [--rounds 2] [--target 15] [--upload 0]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
PRESETS = ["Negation", "Word order", "Paraphrase, no shared words", "Same topic, different meaning"]
QUERIES = ["How do I change my password?", "Is the train late today?", "我的快递到哪里了？", "Best pasta recipe",
           "My phone battery dies fast", "Will it snow tomorrow?", "退款多久到账", "Cheap flights to Rome"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    t0 = time.time()
    while time.time() - t0 < 120:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
            return proc
        except OSError:
            time.sleep(0.5)
    raise SystemExit("the server did not start")


def cpu_seconds(server_pid: int) -> tuple[float, float]:
    """CPU seconds so far of the dashboard server's process tree and of everything else on the machine (mostly the
    chromium processes this script drives; chromium's renderers are re-parented away from us, so they are counted
    through the machine's total): where the 2 cores went while the pages worked."""
    import psutil

    server = 0.0
    try:
        for q in [psutil.Process(server_pid), *psutil.Process(server_pid).children(recursive=True)]:
            try:
                c = q.cpu_times()
                server += c.user + c.system
            except psutil.Error:
                pass
    except psutil.Error:
        pass
    m = psutil.cpu_times()
    busy = m.user + m.system + getattr(m, "nice", 0.0) + getattr(m, "irq", 0.0) + getattr(m, "softirq", 0.0)
    return server, busy - server


def nice_browsers() -> int:
    """Lower chromium's priority below the server's: in a real demo each visitor's browser runs on their own machine,
    so the server's latency is what to measure, not a contest with eight browsers for this machine's cores.
    Renderers started later are forked from the re-niced zygote and inherit it. Returns how many were re-niced."""
    import psutil

    n = 0
    for q in psutil.process_iter(["name"]):
        if "chrom" in (q.info["name"] or "").lower():
            try:
                q.nice(19)
                n += 1
            except psutil.Error:
                pass
    return n


def wait_idle(server_pid: int, timeout_s: float = 300) -> float:
    """Until the server uses under 10% of a core for 3 s: its start-up warm-up (loading the default models,
    compiling UMAP's numba code) must not be timed as the lab's work. Returns the seconds waited."""
    t0 = time.perf_counter()
    last = cpu_seconds(server_pid)[0]
    while time.perf_counter() - t0 < timeout_s:
        time.sleep(3)
        now = cpu_seconds(server_pid)[0]
        if now - last < 0.3:
            break
        last = now
    return time.perf_counter() - t0


async def settle(page, timeout_s: float = 600) -> None:
    """Until Streamlit's running indicator is gone (the script run and its charts are done)."""
    await page.wait_for_timeout(300)
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout_s:
        if not await page.locator('[data-testid="stStatusWidget"]').count():
            await page.wait_for_timeout(200)
            if not await page.locator('[data-testid="stStatusWidget"]').count():
                return
        await page.wait_for_timeout(200)


async def errors(page) -> int:
    return (await page.locator('[data-testid="stException"]').count()
            + await page.locator('[data-testid="stAlert"]:has-text("created outside the function")').count())


async def visitor(browser, base: str, n: int, rounds: int, batch_file: str, out: list, bad: list) -> None:
    ctx = await browser.new_context(viewport={"width": 1400, "height": 1200})
    page = await ctx.new_page()
    page.set_default_timeout(600_000)
    for r in range(rounds):
        t0 = time.perf_counter()
        await page.goto(f"{base}/?preset={PRESETS[(n + r) % len(PRESETS)].replace(' ', '+')}")
        await settle(page)
        await page.locator('[data-testid="stPlotlyChart"]').first.wait_for()
        out.append(("compare", time.perf_counter() - t0))
        bad.append(await errors(page))
        t0 = time.perf_counter()
        await page.goto(f"{base}/neighbours?nb_queries={QUERIES[(n + r) % len(QUERIES)]}")
        await settle(page)
        await page.locator('[data-testid="stTable"]').first.wait_for()
        out.append(("neighbours", time.perf_counter() - t0))
        bad.append(await errors(page))
        t0 = time.perf_counter()
        await page.goto(f"{base}/batch")
        await settle(page)
        if batch_file:
            await page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(batch_file)
        else:
            await page.get_by_role("button", name="Use an example file").click()
        await settle(page)
        await page.get_by_role("button", name="Score ").click()
        await page.get_by_role("button", name="Download all ").wait_for()
        out.append(("batch", time.perf_counter() - t0))
        bad.append(await errors(page))
    await ctx.close()


async def run(args: argparse.Namespace, base: str, batch_file: str, server_pid: int) -> tuple[list, list]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        warm: list = []
        await visitor(browser, base, 0, 1, batch_file, warm, [])  # loads the models and fills the caches
        print("warm-up visitor: " + ", ".join(f"{a} {s:.1f}s" for a, s in warm))
        # a demo's visitors arrive after the server's one-off warm-up (models, UMAP's numba compile): not timed
        print(f"waited {wait_idle(server_pid):.0f} s for the server's warm-up to finish")
        if args.nice_browsers:
            print(f"re-niced {nice_browsers()} chromium processes to 19 (--no-nice-browsers to keep them equal)")
        out: list = []
        bad: list = []
        t0, c0 = time.perf_counter(), cpu_seconds(server_pid)
        await asyncio.gather(*(visitor(browser, base, n, args.rounds, batch_file, out, bad) for n in range(args.sessions)))
        wall, c1 = time.perf_counter() - t0, cpu_seconds(server_pid)
        print(f"{args.sessions} sessions x {args.rounds} rounds in {wall:.0f} s; CPU seconds: dashboard server "
              f"{c1[0] - c0[0]:.0f}, the rest of the machine (browsers) {c1[1] - c0[1]:.0f} "
              f"(of {os.cpu_count() * wall:.0f} on {os.cpu_count()} cores)")
        await browser.close()
    return out, bad


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", type=int, default=8)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--target", type=float, default=15.0, help="p95 seconds per action")
    p.add_argument("--upload", type=int, default=0, help="rows of a file to upload instead of the example file")
    p.add_argument("--nice-browsers", action=argparse.BooleanOptionalAction, default=True,
                   help="run the browsers at the lowest CPU priority (they stand for the visitors' own machines)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as d:
        batch_file = ""
        if args.upload:
            batch_file = str(Path(d) / "pairs.csv")
            with open(batch_file, "w", newline="", encoding="utf-8") as fh:
                w = csv.writer(fh)
                w.writerow(["sentence1", "sentence2"])
                for i in range(args.upload):
                    w.writerow([f"Row {i}: the parcel was delivered on day {i % 7}.", f"Delivery {i} arrived at the door."])
        port = free_port()
        proc = start_server(port)
        try:
            out, bad = asyncio.run(run(args, f"http://127.0.0.1:{port}", batch_file, proc.pid))
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
    print(f"{'action':<11} {'n':>3} {'p50 s':>7} {'p95 s':>7} {'max s':>7}")
    p95_all = []
    for action in ("compare", "neighbours", "batch"):
        xs = sorted(s for a, s in out if a == action)
        p95 = xs[min(len(xs) - 1, round(0.95 * (len(xs) - 1)))]
        p95_all.append(p95)
        print(f"{action:<11} {len(xs):>3} {statistics.median(xs):>7.1f} {p95:>7.1f} {xs[-1]:>7.1f}")
    print(f"error boxes: {sum(bad)}")
    ok = max(p95_all) <= args.target and sum(bad) == 0
    print("PASS" if ok else "FAIL", f"(target: p95 <= {args.target:g} s per action, no error box)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
