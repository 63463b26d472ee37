"""The Evaluation lab in the browser against the same work on the command line, in one run.

1. Command line: ``evaluate`` and ``recall_rerank`` (what ``python -m backend evaluate`` and
   ``bench/recall_rerank.py`` run) on STS-B dev in this process, models loaded first, cold vector cache.
2. Browser: ``streamlit run app.py`` and Debian's chromium; Compare first (it loads the models), then the Evaluation
   lab on "STS-B dev, English" with all 1,500 pairs: the time from the click to the verdict, then the same for
   Recall → rerank.

Both sides run with the persistent vector cache off (``SIMDASH_CACHE=memory``), so neither reuses the other's
vectors, and the page is set to the same reranker as the command line. The page also shows the seconds its
background job spent recalling and reranking: the gap between those and the click-to-verdict time is the page's
own overhead.

Prints both times and their ratio (target: browser <= 1.5x the command line). Needs ../shared/data.

    python bench/bench_lab.py [--models w2v,bert,sbert,esim] [--reranker esim]
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_visitors import ARGS, CHROMIUM, cpu_seconds, free_port, start_server, wait_idle  # noqa: E402

DEV = REPO.parent / "shared" / "data" / "stsb-en" / "dev.tsv"


# The persistent cache is shared by every process naming the same folder: off, or the second side reuses the first.
os.environ["SIMDASH_CACHE"] = "memory"


def command_line(keys: list[str], reranker: str) -> tuple[float, float]:
    from backend.lab.evaluation import evaluate, load_labelled_pairs
    from backend.lab.retrieval import build_retrieval_task, recall_rerank
    from backend.serving import Backend

    be = Backend()
    for k in {*keys, reranker}:
        be.load(k)
    data = load_labelled_pairs(DEV)
    t0 = time.perf_counter()
    evaluate(be, data, keys)
    t_eval = time.perf_counter() - t0
    task = build_retrieval_task(data, 4.0)
    t0 = time.perf_counter()
    res = recall_rerank(be, task, "sbert", reranker, 20)
    print(f"command line: recall {res.recall_seconds:.2f} s, rerank {res.rerank_seconds:.2f} s")
    return t_eval, time.perf_counter() - t0


def wait_text(page, texts: tuple[str, ...], timeout_s: float = 1800) -> None:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout_s:
        body = page.locator('[data-testid="stMain"]').inner_text()
        if any(x in body for x in texts):
            return
        page.wait_for_timeout(250)
    raise SystemExit(f"none of {texts} appeared within {timeout_s:.0f} s")


def browser(keys: list[str], reranker: str) -> tuple[float, float]:
    from playwright.sync_api import sync_playwright

    port = free_port()
    proc = start_server(port)
    base = f"http://127.0.0.1:{port}"
    try:
        with sync_playwright() as pw:
            b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            page = b.new_page(viewport={"width": 1400, "height": 1400})
            page.set_default_timeout(1_800_000)
            page.goto(f"{base}/?models={'&models='.join(keys)}")
            page.locator('[data-testid="stPlotlyChart"]').first.wait_for()  # the models are loaded
            page.goto(f"{base}/evaluate?models={'&models='.join(keys)}")
            page.get_by_text("STS-B dev, English").click()
            page.wait_for_timeout(2000)
            box = page.locator('[data-testid="stNumberInput"]').filter(has_text="Pairs to use").locator("input").first
            box.fill("1500")
            box.press("Enter")
            page.wait_for_timeout(2000)
            print(f"waited {wait_idle(proc.pid):.0f} s for the server's warm-up to finish")
            t0, c0 = time.perf_counter(), cpu_seconds(proc.pid)
            page.get_by_role("button", name="Evaluate 1,500 pairs").click()
            wait_text(page, ("agrees best",))
            t_eval = time.perf_counter() - t0
            c1 = cpu_seconds(proc.pid)
            print(f"metrics: {t_eval:.1f} s wall; CPU s: server {c1[0] - c0[0]:.1f}, browser {c1[1] - c0[1]:.1f}")
            page.get_by_role("tab", name="Recall → rerank").click()
            page.wait_for_timeout(1000)
            pick = page.locator('[data-testid="stSelectbox"]').filter(has_text="Reranker")
            pick.click()
            page.get_by_role("option", name=reranker, exact=True).click()
            page.wait_for_timeout(1500)
            t0, c0 = time.perf_counter(), cpu_seconds(proc.pid)
            page.get_by_role("button", name="Retrieve and rerank").click()
            wait_text(page, ("MRR@10 by", "MRR@10 within"))
            t_rr = time.perf_counter() - t0
            c1 = cpu_seconds(proc.pid)
            print(f"recall -> rerank: {t_rr:.1f} s wall; CPU s: server {c1[0] - c0[0]:.1f}, "
                  f"browser {c1[1] - c0[1]:.1f}")
            for m in page.locator('[data-testid="stMetric"]').all():
                print("page reports:", " ".join(m.inner_text().split()))
            b.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
    return t_eval, t_rr


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="w2v,bert,sbert,esim")
    p.add_argument("--reranker", default="esim")
    args = p.parse_args()
    if not DEV.exists():
        raise SystemExit(f"{DEV} is missing")
    keys = args.models.split(",")
    cli = command_line(keys, args.reranker)
    web = browser(keys, args.reranker)
    print(f"{'work':<26} {'command line':>13} {'browser':>9} {'ratio':>7}")
    ok = True
    for name, c, w in (("metrics, 1,500 pairs", cli[0], web[0]), ("recall -> rerank", cli[1], web[1])):
        print(f"{name:<26} {c:>12.1f}s {w:>8.1f}s {w / c:>6.2f}x")
        ok &= w <= 1.5 * c
    print("PASS" if ok else "FAIL", "(target: browser <= 1.5x the command line)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
