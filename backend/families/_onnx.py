"""A faster CPU path for the transformer families: the ``runtime`` option (``torch``, ``onnx``, ``onnx-int8``).

``onnx`` exports the loaded PyTorch network once (``torch.onnx.export``, TorchScript tracing, dynamic batch and
sequence axes) into ``<cache folder>/onnx/<fingerprint>/`` and runs it with onnxruntime; ``onnx-int8`` further
quantises the weights of the matrix products to 8 bits (onnxruntime's dynamic quantisation: activations are
quantised per batch at run time). The fingerprint covers the weight files (names, sizes, times), what is
exported and the library versions, so changed weights are exported again; an export is written under a
temporary name and renamed, so a killed export leaves no half file behind.

Why not sentence-transformers' ``backend="onnx"``: it needs ``optimum``, whose ONNX exporter pins
``transformers<4.58`` — it would downgrade the transformers this project runs on. ``torch.onnx`` and
onnxruntime are the same machinery without that pin.

Measured numbers (speed-up against plain ``SentenceTransformer.encode`` and the Spearman change on STS-B dev)
are in docs/server.md; ``bench/bench_onnx.py`` reproduces them. onnxruntime's CPU build is used: on a GPU device
the families keep ``torch`` (faster there) and say so in their model card.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from backend.options import Option

if TYPE_CHECKING:  # torch and onnxruntime are imported where they run: asking a family's options needs neither
    import torch

log = logging.getLogger(__name__)

RUNTIMES = ("torch", "onnx", "onnx-int8")
#: bump when what is exported changes, so old exports are not reused.
EXPORT_VERSION = 2

RUNTIME_OPTION = Option(
    "runtime", str, "torch",
    "How the network runs: torch (PyTorch), onnx (onnxruntime on an export of these weights made on first use: "
    "about 2x faster on a CPU, same numbers within 1e-5), onnx-int8 (8-bit weights: faster still, scores move "
    "slightly; docs/server.md has the measured speed and Spearman change). CPU only: on a GPU, torch is used.",
    choices=RUNTIMES,
)


def onnx_root() -> Path:
    """Where exports are kept: ``<SIMDASH_CACHE_DIR or ~/.cache/simdash>/onnx``."""
    from backend.paths import default_dir

    return default_dir() / "onnx"


def fingerprint(source: str, what: str) -> str:
    """A short hash of the weight files under ``source`` and of what is exported from them."""
    p = Path(source)
    files = sorted(x for x in (p.rglob("*") if p.is_dir() else [p]) if x.is_file())
    stat = [(str(f.relative_to(p) if p.is_dir() else f.name), f.stat().st_size, int(f.stat().st_mtime)) for f in files
            if f.suffix in (".safetensors", ".bin", ".json", ".txt", ".model", ".pt")]
    import onnxruntime
    import torch

    blob = json.dumps([str(p.resolve()), stat, what, EXPORT_VERSION, torch.__version__, onnxruntime.__version__])
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def export(module: torch.nn.Module, example: dict[str, torch.Tensor], outputs: Sequence[str], folder: Path,
           int8: bool) -> Path:
    """The ONNX file of ``module`` (exported now unless ``folder`` has it); with ``int8``, its quantised copy.

    Parameters
    ----------
    module : torch.nn.Module
        Takes the tensors of ``example`` as positional arguments, in order.
    example : dict
        Input name -> an example batch (int64, shape (batch, tokens)); both axes are exported as dynamic.
    outputs : sequence of str
        Output names.
    folder : Path
        The export's cache folder (one per fingerprint).
    int8 : bool
        Also quantise the matrix products' weights to int8 and return that file.
    """
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    fp32 = folder / "model.onnx"
    if not fp32.exists():
        tmp = folder / f"model.onnx.tmp-{os.getpid()}"
        axes = {name: {0: "batch", 1: "tokens"} for name in example}
        axes.update({name: {i: f"{name}_{i}" for i in range(4)} for name in outputs})
        log.info("exporting %s to ONNX (once)", folder.name)
        import warnings

        # The TorchScript exporter warns about every Python branch it freezes; the exported graph is checked
        # against torch in tests/families/test_onnx.py instead.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module.eval(), tuple(example.values()), str(tmp), dynamo=False,
                              input_names=list(example), output_names=list(outputs), dynamic_axes=axes,
                              opset_version=17)
        tmp.replace(fp32)
    if not int8:
        return fp32
    q = folder / "model-int8.onnx"
    if not q.exists():
        from onnxruntime.quantization import QuantType, quantize_dynamic

        tmp = folder / f"model-int8.onnx.tmp-{os.getpid()}"
        # Per-channel scales (one per output row of each weight matrix) kept Spearman on 600 STS-B dev pairs
        # within 0.12 points of fp32 where one scale per tensor lost 0.43-0.49, at the same speed (our CPU).
        quantize_dynamic(str(fp32), str(tmp), weight_type=QuantType.QInt8, per_channel=True,
                         extra_options={"DefaultTensorType": 1})
        tmp.replace(q)
    return q


class OnnxRunner:
    """An onnxruntime CPU session with as many threads as torch uses (a fair comparison, polite on shared CPUs)."""

    def __init__(self, path: Path) -> None:
        import onnxruntime as ort
        import torch

        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.intra_op_num_threads = max(1, torch.get_num_threads())
        so.log_severity_level = 3
        self.path = path
        self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]

    def __call__(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(None, {k: np.ascontiguousarray(feeds[k], dtype=np.int64) for k in self.inputs})


def use_onnx(runtime: str, device: str) -> bool:
    """True when ``runtime`` asks for onnxruntime and the device is the CPU (a GPU keeps torch)."""
    if runtime == "torch":
        return False
    if device != "cpu":
        log.warning("runtime %r runs on the CPU only; the model stays on torch on %s", runtime, device)
        return False
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise ImportError(f"runtime {runtime!r} needs onnxruntime and onnx: pip install -r requirements-onnx.txt") from None
    return True


def keyword_module(inner: torch.nn.Module, names: Sequence[str],
                   call: Callable[[torch.nn.Module, dict[str, torch.Tensor]], Any]) -> torch.nn.Module:
    """A module for :func:`export`: its ``forward(*args)`` runs ``call(inner, {names[i]: args[i]})``.

    ``torch.onnx.export`` passes the example's tensors by position while a Hugging Face network (or a
    sentence-transformers pipeline) takes them by name; ``inner`` is registered as a submodule, so ``.eval()``
    and the exported parameters reach it. The class is made here rather than at module level because
    subclassing ``torch.nn.Module`` would import torch with this file.
    """
    import torch

    class KeywordInputs(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *args):
            return call(self.inner, dict(zip(names, args, strict=True)))

    return KeywordInputs()


__all__ = ["RUNTIMES", "RUNTIME_OPTION", "OnnxRunner", "export", "fingerprint", "keyword_module", "onnx_root",
           "use_onnx"]
