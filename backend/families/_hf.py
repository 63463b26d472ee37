"""What the three transformer families (``bert``, ``sbert``, ``cross``) share: :class:`TransformerModel`.

A transformer family loads a Hugging Face network and a word-piece tokenizer; the loading steps around the
weights are the same for all three (time the load, choose the dtype, cap ``max_tokens`` at the network's position
table, read the languages and the ``runtime`` option, export to ONNX on first use), and so are the facts its card
shows (parameters, dtype, architecture, runtime, max_tokens) and the warning for a text cut at ``max_tokens``.
Each family keeps only what is its own: the pooled layer (``bert``), the sentence-transformers pipeline
(``sbert``), pairs and their longest-first truncation (``cross``).

Nothing here imports torch or transformers at module level: a family file is imported to ask its roles and
options, which the cache answers without any weights, and those imports alone cost over a second.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from backend.base import SentenceModel, truncation_message
from backend.devices import dtype_name, pick_dtype
from backend.families._onnx import OnnxRunner, export, fingerprint, keyword_module, onnx_root, use_onnx
from backend.registry import ModelSpec

if TYPE_CHECKING:
    import torch

#: what a tokenizer may return that the networks take, in the order an ONNX export passes them.
TOKENIZER_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def quiet_transformers() -> None:
    """Silence transformers' per-load progress bars: they clutter the CLI's stderr and the server log."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def hf_load_kwargs(spec: ModelSpec) -> dict:
    """Keyword arguments for ``from_pretrained``: never touch the network for local/package sources.

    A ``hf:`` id is looked up in the local cache first; the hub is only contacted when the user has not set
    ``HF_HUB_OFFLINE=1`` (and then fails fast here, since this machine has no route to it).
    """
    quiet_transformers()
    local = not spec.source.startswith("hf:") or os.environ.get("HF_HUB_OFFLINE") == "1"
    return {"local_files_only": local}


def position_limit(config: Any) -> int:
    """Tokens a network's position table can take (``max_position_embeddings``; 512, BERT's, when unsaid)."""
    return int(getattr(config, "max_position_embeddings", 512) or 512)


class TransformerModel(SentenceModel):
    """The scaffolding of a transformer family; a family subclasses it *and* its role(s).

    ``class Model(TransformerModel, Encoder)`` (or ``PairScorer``): :meth:`__init__` times the load, picks the
    dtype and the languages, calls the family's :meth:`_load`, applies the run-time options and sets up the
    ``runtime`` option (exporting to ONNX through the family's :meth:`_export` when asked). :meth:`info` adds the
    common facts to the card; :meth:`truncation_warnings` says which single texts were cut.

    Parameters
    ----------
    spec : ModelSpec
        The registry entry; ``spec.resolve_source()`` is the folder the family loads.
    device : str
        ``"cpu"``, ``"cuda[:i]"``, ``"mps"``.
    dtype : str, optional
        ``"fp32"``, ``"bf16"``, ``"fp16"``; by default :func:`~backend.devices.pick_dtype` chooses (fp32 on a CPU).

    Attributes
    ----------
    net : object
        What the family loaded (a transformers model, a ``SentenceTransformer``, a ``CrossEncoder``).
    tokenizer : transformers tokenizer
        The network's word-piece tokenizer.
    max_tokens : int
        Word pieces read per input, special tokens included; never more than the position table holds.
    torch_dtype : torch.dtype
        The weights' dtype.
    runtime : str
        What the card shows as the runtime option (``"torch (onnx is CPU only)"`` on a GPU).
    onnx : OnnxRunner or None
        The onnxruntime session when the ``runtime`` option runs the network there; None on torch.
    """

    #: the start of this family's ONNX export folders, ``<onnx_root>/<onnx_prefix>-<fingerprint>``.
    onnx_prefix: str = ""
    #: the batch an export is traced with: two inputs of different lengths, so the padding and mask are traced too.
    EXPORT_EXAMPLE: Sequence[Any] = ("an example", "a longer example sentence")

    net: Any
    tokenizer: Any
    max_tokens: int
    torch_dtype: torch.dtype
    runtime: str = "torch"
    onnx: OnnxRunner | None = None

    def __init__(self, spec: ModelSpec, device: str = "cpu", dtype: str | None = None) -> None:
        super().__init__(spec, device)
        t0 = time.perf_counter()
        path = spec.resolve_source()
        self.languages = ("en", "zh") if spec.language == "multi" else (spec.language,)
        self.torch_dtype = pick_dtype(device, dtype)
        self._load(path)
        self._apply_options()
        self.setup_runtime(path)
        self.load_seconds = time.perf_counter() - t0

    # ------------------------------------------------------------------------------- a family's own
    def _load(self, path: str) -> None:
        """Load the weights from ``path`` into :attr:`net`, set :attr:`tokenizer` and :attr:`max_tokens`
        (each family implements this; :attr:`torch_dtype` is already chosen)."""
        raise NotImplementedError

    def _export(self, path: str) -> OnnxRunner:
        """The ONNX runner of this family's network, exported on first use (each family implements this with
        :meth:`export_onnx`)."""
        raise NotImplementedError

    @property
    def network(self) -> torch.nn.Module:
        """The torch module that holds the weights: its parameters are counted and its class is the architecture."""
        return self.net

    # ------------------------------------------------------------------------------------- loading
    def cap_tokens(self, requested: int, config: Any) -> int:
        """``requested`` word pieces, at most what the position table of ``config`` holds (more would crash it)."""
        return min(int(requested), position_limit(config))

    def setup_runtime(self, path: str) -> None:
        """Read the ``runtime`` option into :attr:`runtime` (what the card shows) and :attr:`onnx` (the ONNX
        runner, exported now by :meth:`_export` on first use; None on torch)."""
        self.runtime = str(self.options["runtime"])
        self.onnx = None
        if use_onnx(self.runtime, self.device):
            self.onnx = self._export(path)
        elif self.runtime != "torch":
            self.runtime = f"torch ({self.runtime} is CPU only)"

    @property
    def runtime_label(self) -> str:
        """What a model card shows as the runtime: the option, and the ONNX file when onnxruntime runs it."""
        return self.runtime if self.onnx is None else f"{self.runtime} ({self.onnx.path.name}, onnxruntime CPU)"

    def export_onnx(self, path: str, module: torch.nn.Module,
                    call: Callable[[torch.nn.Module, dict[str, torch.Tensor]], Any], output: str,
                    what: str) -> OnnxRunner:
        """Export ``call(module, inputs)`` to ONNX once (traced on :attr:`EXPORT_EXAMPLE`) and open it.

        Parameters
        ----------
        path : str
            The weights' folder: its files are part of the export's fingerprint.
        module : torch.nn.Module
            The network whose parameters are exported.
        call : callable
            ``call(module, {input name: tensor})`` -> the one output tensor.
        output : str
            The output's name.
        what : str
            What is exported, for the fingerprint (a different output is a different export).

        Returns
        -------
        OnnxRunner
            On ``model-int8.onnx`` when the runtime is ``onnx-int8``, else on ``model.onnx``.
        """
        import torch

        feats = self.tokenizer(list(self.EXPORT_EXAMPLE), padding=True, return_tensors="np")
        names = [n for n in TOKENIZER_INPUTS if n in feats]
        # In ``names`` order: the export passes the inputs by position.
        example = {n: torch.as_tensor(feats[n]) for n in names}
        folder = onnx_root() / f"{self.onnx_prefix}-{fingerprint(path, what)}"
        return OnnxRunner(export(keyword_module(module, names, call), example, [output], folder,
                                 int8=self.runtime == "onnx-int8"))

    # --------------------------------------------------------------------------------------- facts
    def info(self) -> dict[str, Any]:
        """The role's facts, then the transformer's: parameters, max_tokens, dtype, architecture, runtime."""
        out = super().info()
        out.update(
            parameters=int(sum(p.numel() for p in self.network.parameters())),
            max_tokens=self.max_tokens,
            dtype=dtype_name(self.torch_dtype),
            architecture=type(self.network).__name__,
            runtime=self.runtime_label,
        )
        return out

    def truncation_warnings(self, texts: Sequence[str]) -> list[list[str]]:
        """Say which texts exceed :attr:`max_tokens` word pieces (special tokens included) and where they are cut.

        Only texts with more characters than the limit are tokenised: a word piece covers at least one character,
        so a shorter text cannot overflow, and the common case (short sentences) costs nothing. Takes the lock
        (a fast tokenizer is not thread-safe).
        """
        out: list[list[str]] = [[] for _ in texts]
        with self.lock:
            n_special = self.tokenizer.num_special_tokens_to_add(pair=False)
            budget = self.max_tokens - n_special
            long_idx = [i for i, t in enumerate(texts) if len(t) > budget]
            if not long_idx:
                return out
            enc = self.tokenizer([texts[i] for i in long_idx], add_special_tokens=False, truncation=False)
            for i, ids in zip(long_idx, enc["input_ids"], strict=True):
                if len(ids) > budget:
                    last = self.tokenizer.convert_ids_to_tokens(ids[budget - 1])
                    out[i].append(truncation_message(len(ids) + n_special, self.max_tokens, last, "word pieces",
                                                     kept=budget))
        return out


__all__ = ["TOKENIZER_INPUTS", "TransformerModel", "hf_load_kwargs", "position_limit", "quiet_transformers"]
