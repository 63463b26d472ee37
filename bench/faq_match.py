"""Top-1 accuracy of ``python -m backend match`` on our Chinese FAQ set (backend/data/faq_zh_*.csv), per encoder,
with and without a reranker: the README's FAQ table.

    .venv/bin/python bench/faq_match.py [--rerank cross] [--models sbert,w2v,bert,esim]

Each user question (60, two per intent, written by us) is matched against the 30 FAQs; it counts as right when the
FAQ ranked first (or reranked first) has the question's intent.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATA = ROOT / "backend" / "data"


def top1(frame: pd.DataFrame, corpus: pd.DataFrame, rank_col: str) -> pd.Series:
    """Per model, the share of questions whose first-ranked FAQ has their intent."""
    first = frame[frame[rank_col] == 1].copy()
    first["pred"] = corpus["intent"].to_numpy()[first["corpus_row"].astype(int)]
    return first.groupby("model").apply(lambda g: float((g["pred"] == g["intent"]).mean()), include_groups=False)


def main() -> None:
    from backend.files.match import MatchCorpus, Matcher
    from backend.serving import Backend

    p = argparse.ArgumentParser()
    p.add_argument("--models", default="sbert,w2v,bert,esim")
    p.add_argument("--rerank", default="cross")
    p.add_argument("--top-k", type=int, default=5)
    args = p.parse_args()
    be = Backend(cache_dir="memory")
    corpus = pd.read_csv(DATA / "faq_zh_corpus.csv")
    questions = pd.read_csv(DATA / "faq_zh_questions.csv")
    m = Matcher(be, MatchCorpus.from_texts(corpus["text"].tolist()), be.registry.requests(args.models.split(",")),
                args.top_k, be.registry.requests([args.rerank])[0] if args.rerank else None)
    out = m.match(questions["query"].tolist(), questions[["intent"]])
    cosine = top1(out, corpus, "rank")
    rows = [{"asked": r.name, "model": m.routes[r.name].key, "top-1": cosine.get(m.routes[r.name].key)}
            for r in m.models]
    if args.rerank:
        rer = top1(out, corpus, "rerank_rank")
        for row in rows:
            row[f"top-1 after {args.rerank} rerank of top {args.top_k}"] = rer.get(row["model"])
    table = pd.DataFrame(rows)
    print(f"{len(questions)} questions, {len(corpus)} FAQs")
    print("| " + " | ".join(table.columns) + " |")
    print("|" + " --- |" * len(table.columns))
    for _, r in table.iterrows():
        print("| " + " | ".join(f"{v:.0%}" if isinstance(v, float) else str(v) for v in r) + " |")


if __name__ == "__main__":
    main()
