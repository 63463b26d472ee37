"""GPU check: the CUDA code paths agree with the CPU and are faster. Run on a machine with a GPU::

    python bench/gpu_check.py            # the registry's default models (needs requirements.txt installed)
    python bench/gpu_check.py --tiny     # a randomly initialised small BERT built on the spot, for machines
                                         # without the bundled model packages; exercises the same code paths

For each transformer-based model (``bert``, ``sbert``, ``esim``): it loads on ``cuda`` in half precision (bf16
where supported), its scores on pairs from the demo corpus agree with the CPU's fp32 scores within 0.02 (half
precision moves cosines in the third decimal), and it prints sentences/s (pairs/s for ESIM) on GPU and CPU.
``w2v`` is numpy on the CPU by design (a sparse matrix product; a GPU would not pay for the transfers), so it is
not checked here. Exits 1 when a check fails, 0 (saying so) without a GPU. Tests never require a GPU.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def build_tiny_models(folder: Path, texts: list[str]) -> tuple[Path, Path]:
    """A 4-layer random BERT (with a word-level vocabulary from ``texts``) and a sentence-transformers folder on it."""
    import re

    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel, BertTokenizerFast

    words = sorted({w for t in texts for w in re.findall(r"[a-z]+", t.lower())})
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(specials + words) + "\n", encoding="utf-8")
    bert_dir = folder / "tiny-bert"
    tok = BertTokenizerFast(vocab_file=str(vocab), do_lower_case=True)
    tok.save_pretrained(bert_dir)
    import torch

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(specials) + len(words), hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                     intermediate_size=1024, max_position_embeddings=256)
    BertModel(cfg).save_pretrained(bert_dir)
    st_dir = folder / "tiny-sbert"
    tr = models.Transformer(str(bert_dir), max_seq_length=128)
    SentenceTransformer(modules=[tr, models.Pooling(tr.get_word_embedding_dimension(), "mean")]).save(str(st_dir))
    return bert_dir, st_dir


def rate(fn, n: int, cuda: bool) -> float:
    """Items per second of ``fn`` (one warm-up call first)."""
    import torch

    fn()
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if cuda:
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t0)


def main() -> int:
    """Run the checks; return the process exit code."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="random small BERT instead of the bundled packages")
    args = ap.parse_args()
    import pandas as pd
    import torch

    from backend.registry import ModelSpec, Registry
    from backend.serving import Backend

    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check (this is not a failure)")
        return 0
    print(f"# {torch.cuda.get_device_name(0)}, torch {torch.__version__}, bf16 supported: {torch.cuda.is_bf16_supported()}")
    corpus = pd.read_csv(ROOT / "backend" / "data" / "demo_corpus.csv")
    en = corpus[corpus.lang == "en"].text.tolist()
    a, b = en[0::2][:100], en[1::2][:100]
    big = [f"{x} {y}" for x in en[:60] for y in en[60:100]]  # 2,400 distinct longer texts for throughput

    reg = Registry.load()
    keys = ["bert", "sbert", "esim"]
    if args.tiny:
        tmp = Path(tempfile.mkdtemp())
        bert_dir, st_dir = build_tiny_models(tmp, en)
        reg.add(ModelSpec(key="bert", family="bert", label="tiny bert", source=f"path:{bert_dir}",
                          options=reg["bert"].options))
        reg.add(ModelSpec(key="sbert", family="sbert", label="tiny sbert", source=f"path:{st_dir}"))
    cpu, gpu = Backend(reg, device="cpu"), Backend(reg, device="auto")
    print(f"# Backend(device='auto') chose {gpu.device!r}")
    failed = gpu.device != "cuda"
    for key in keys:
        try:
            mg = gpu.model(key)
            mc = cpu.model(key)
        except Exception as exc:
            print(f"{key:6s} FAIL to load: {exc}")
            failed = True
            continue
        info = mg.info()
        sc, sg = cpu.score_pairs(key, a, b), gpu.score_pairs(key, a, b)
        if sg.error or sc.error:
            print(f"{key:6s} FAIL scoring: {sg.error or sc.error}")
            failed = True
            continue
        diff = float(np.nanmax(np.abs(sc.scores - sg.scores)))
        half = info.get("dtype") in ("bf16", "fp16") or key == "esim"
        ok = diff < 0.02 and str(info["device"]).startswith("cuda") and half and not np.isnan(sg.scores).any()
        failed |= not ok
        if key == "esim":
            xs, ys = big[: len(big) // 2], big[len(big) // 2 :]
            g = rate(lambda m=mg, x=xs, y=ys: m.score(x, y), len(xs), True)
            c = rate(lambda m=mc, x=xs, y=ys: m.score(x[:300], y[:300]), 300, False)
            unit = "pairs/s"
        else:
            g = rate(lambda m=mg: m.encode(big, batch_size=128), len(big), True)
            c = rate(lambda m=mc: m.encode(big[:300]), 300, False)
            unit = "sentences/s"
        print(f"{key:6s} {'ok  ' if ok else 'FAIL'} dtype {info.get('dtype')}, max |cpu fp32 - gpu| = {diff:.4f}; "
              f"GPU {g:,.0f} {unit} vs this machine's CPU {c:,.0f} ({g / c:.0f}x)")
        # Warnings travel on the GPU path too (truncation is computed on the CPU tokenizer either way).
        if key != "esim":
            w = gpu.embed(key, ["word " * 600]).warnings[0]
            if not any("truncated" in x for x in w):
                print(f"{key:6s} FAIL: no truncation warning on cuda")
                failed = True
    print("RESULT:", "FAIL" if failed else "all GPU checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
