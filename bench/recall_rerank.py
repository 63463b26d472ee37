"""The study notes' recommendation, measured: recall with a sentence-vector model, rank with the interaction model.

Run from the repo root::

    python bench/recall_rerank.py                                   # STS-B dev, k = 20
    python bench/recall_rerank.py FILE --k 50 --retrievers sbert,w2v --rerankers cross
    python bench/recall_rerank.py ../shared/data/stsb-zh/dev.tsv --retrievers sbert-zh,w2v-zh --rerankers esim-zh,cross-zh

Builds a retrieval task from labelled pairs (``backend.lab.retrieval.build_retrieval_task``: each first sentence of a
pair scored >= 4 of 5 is a query, its second sentence the relevant item, all distinct second sentences the
corpus), retrieves the top ``k`` with each bi-encoder, reranks them with each pair scorer (ESIM, the
cross-encoder), and prints recall@k, MRR@10 and
nDCG@10 before and after, with the seconds each stage took. This is what the Evaluation lab's Recall -> rerank
tab shows, as a script.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    """Print one row per (retriever, stage)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file", nargs="?", default=str(ROOT.parent / "shared" / "data" / "stsb-en" / "dev.tsv"))
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--retrievers", default="w2v,bert,sbert,esim")
    ap.add_argument("--rerankers", default="esim,cross", help="pair scorers, comma-separated")
    args = ap.parse_args()

    import pandas as pd

    from backend.lab.evaluation import load_labelled_pairs
    from backend.lab.retrieval import build_retrieval_task, recall_rerank
    from backend.serving import Backend

    be = Backend()
    task = build_retrieval_task(load_labelled_pairs(args.file))
    print(f"# {task.notes[0]}; k = {args.k}; {len(task.queries)} queries")
    rows = []
    for key in args.retrievers.split(","):
        for i, reranker in enumerate(args.rerankers.split(",")):
            res = recall_rerank(be, task, retriever=key, reranker=reranker, k=args.k)
            if res.error:
                print(f"{key} -> {reranker}: {res.error}")
            stages = [(f"+ {reranker} rerank", res.metrics_after, res.rerank_seconds)]
            if i == 0:  # the recall stage is the same whatever reranks it
                stages.insert(0, ("recall", res.metrics_before, res.recall_seconds))
            for stage, m, sec in stages:
                rows.append({"retriever": key, "stage": stage, **{k: round(100 * v, 1) for k, v in m.items()},
                             "seconds": round(sec, 2),
                             "ms/query": round(1000 * sec / max(len(task.queries), 1), 1)})
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
