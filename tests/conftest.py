"""Shared fixtures: one real Backend per test session (models load once), and the labelled data folder."""

from __future__ import annotations

import csv
import os
import tempfile
from pathlib import Path

import pandas as pd
import pytest

# Tests never reach a model hub: every default model is installed from PyPI or committed in models/.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# The persistent vector cache (backend/serving/cache.py) of a test run starts empty and is its own: a test never reads
# vectors that an earlier run, the dashboard or the CLI left in ~/.cache/simdash.
os.environ["SIMDASH_CACHE_DIR"] = tempfile.mkdtemp(prefix="simdash-test-cache-")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def backend():
    """The real default Backend on the CPU (GPU code paths are exercised by bench/gpu_check.py)."""
    from backend.serving import Backend

    return Backend(device="cpu")


def read_stsb(split: str = "dev", lang: str = "en") -> pd.DataFrame:
    """STS-B pairs from ../shared/data, or skip the test when the folder is absent (it is not in the repo)."""
    path = SHARED_DATA / f"stsb-{lang}" / f"{split}.tsv"
    if not path.exists():
        pytest.skip(f"{path} not available")
    return pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, dtype=str, keep_default_na=False)
