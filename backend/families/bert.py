"""Raw BERT with hidden-state pooling, the way bert-as-service embeds sentences.

bert-as-service (Han Xiao, 2018) takes the **penultimate** layer (``hidden_states[-2]``) and averages it
over the real tokens (``REDUCE_MEAN`` with the input mask, so [CLS] and [SEP] count). Its FAQ's reason: the
last layer is too close to the pre-training targets (masked-LM / next sentence), the first layers too close
to the raw tokens; the one before last is a reasonable compromise. The dashboard's layer probe measures it.

``hidden_states`` follows transformers' convention: index 0 is the embedding output, 1..L the layers.

Options are declared in :attr:`BertPoolingModel.OPTIONS`. ``first_last_avg`` averages the masked means of the
first transformer layer (``hidden_states[1]``) and the last one, as in Su et al.'s BERT-whitening experiments.

``layer_mix`` replaces the one ``layer`` by a weighted sum of every hidden state, ELMo's scalar mix (Peters et al.
2018, "Deep contextualized word representations": ``gamma * sum_j s_j h_j``) without its ``gamma``, which no
cosine can see. The layer probe learns the weights on labelled pairs and prints the option to paste.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from backend.base import Encoder, Encoding, ProgressFn, length_sorted_batches, normalize_rows
from backend.families._hf import TransformerModel, hf_load_kwargs
from backend.families._onnx import RUNTIME_OPTION, OnnxRunner
from backend.options import Option, OptionError
from backend.registry import ModelSpec

if TYPE_CHECKING:
    import torch

POOLINGS = ("mean", "cls", "max", "first_last_avg")


def _masked_mean(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(h.dtype)
    return (h * m).sum(1) / m.sum(1).clamp(min=1e-9)


def _masked_max(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    import torch

    # Padding gets the dtype's lowest value so it never wins the max.
    return h.masked_fill(~mask.bool().unsqueeze(-1), torch.finfo(h.dtype).min).amax(1)


def pool(hidden_states: tuple[torch.Tensor, ...], mask: torch.Tensor, layer: int, pooling: str,
         mix: Sequence[float] | None = None) -> torch.Tensor:
    """Pool one layer of ``hidden_states``, or a weighted sum of all of them, into sentence vectors (fp32).

    Parameters
    ----------
    hidden_states : tuple of Tensor, each (batch, seq, hidden)
    mask : Tensor (batch, seq)
        Attention mask (1 = real token).
    layer : int
        Ignored when ``mix`` is given.
    pooling : {"mean", "cls", "max", "first_last_avg"}
        ``first_last_avg`` ignores ``layer`` and ``mix``.
    mix : sequence of float, optional
        One weight per hidden state, embedding output first (``layer_mix``, already normalised): the tokens'
        vectors are ``sum_j mix[j] * hidden_states[j]`` before pooling.
    """
    if pooling == "first_last_avg":
        return ((_masked_mean(hidden_states[1], mask) + _masked_mean(hidden_states[-1], mask)) / 2).float()
    if mix is not None:
        import torch

        # summed in fp32: in half precision the small weights' shares would lose most of their digits
        w = torch.as_tensor(np.asarray(mix, dtype=np.float32), device=hidden_states[0].device)
        h = torch.einsum("l,lbsd->bsd", w, torch.stack([x.float() for x in hidden_states]))
    else:
        h = hidden_states[layer]
    if pooling == "mean":
        return _masked_mean(h, mask).float()
    if pooling == "cls":
        return h[:, 0].float()
    if pooling == "max":
        return _masked_max(h, mask).float()
    raise ValueError(f"pooling must be one of {POOLINGS}, not {pooling!r}")


#: a static bound for ``layer`` before the weights are loaded (no BERT-family model has more layers); the
#: loaded model narrows it to its own depth: -(L + 1)..L.
MAX_LAYERS = 48
#: what may separate ``layer_mix``'s weights.
_SEPARATORS = re.compile(r"\s*[;,]\s*|\s+")


def parse_layer_mix(value: Any, states: int | None = None, owner: str = "") -> np.ndarray | None:
    """The weights of a ``layer_mix`` option, normalised to sum to 1; None when it is empty (off).

    Parameters
    ----------
    value : str or sequence of float
        ``"0.05;0.1;..."`` or ``"0.05,0.1,..."``: one weight per hidden state, embedding output first. Semicolons
        are what the probe writes, because ``--models`` splits models at commas.
    states : int, optional
        The model's hidden states (layers + 1); None skips the count check (the depth is not known yet).
    owner : str
        The model key, for the message.

    Raises
    ------
    OptionError
        Not numbers, a negative or non-finite weight, all zero, or a count other than ``states``.
    """
    where = f"{owner}: " if owner else ""
    if isinstance(value, (list, tuple)):
        parts = [str(v) for v in value]
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        parts = [str(value)]
    elif isinstance(value, str):
        if not value.strip():
            return None
        parts = _SEPARATORS.split(value.strip())
    else:
        raise OptionError(f"{where}option 'layer_mix' must be numbers separated by ';' or ',', not {value!r}")
    try:
        w = np.array([float(p) for p in parts], dtype=np.float64)
    except ValueError:
        raise OptionError(f"{where}option 'layer_mix' must be numbers separated by ';' or ',', one weight per hidden "
                          f"state (e.g. 0;0;0;0;0;1;1), not {value!r}") from None
    if states is not None and len(w) != states:
        raise OptionError(f"{where}option 'layer_mix' needs {states} weights, one per hidden state (the embedding "
                          f"output first, then layers 1..{states - 1}); got {len(w)}")
    if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise OptionError(f"{where}option 'layer_mix' weights must be finite, >= 0 and not all 0, not {value!r}")
    return w / w.sum()


@dataclass(frozen=True)
class LayerMixOption(Option):
    """The ``layer_mix`` declaration: a string of numbers whose count must match the model's hidden states.

    ``states`` is None in the family's declaration and set from the registry's ``layers`` or the loaded weights,
    as ``layer``'s range is, so a wrong count is refused before any weights load.
    """

    states: int | None = None

    def check(self, value: Any, owner: str = "") -> str:
        """The option in one canonical form (``""`` = off, else the numbers as given, joined by ``;``), or
        OptionError: the same weights written with commas or semicolons then share one cache key."""
        if parse_layer_mix(value, self.states, owner) is None:
            return ""
        parts = value if isinstance(value, (list, tuple)) else _SEPARATORS.split(str(value).strip())
        return ";".join(str(p).strip() for p in parts)


class BertPoolingModel(TransformerModel, Encoder):
    """A BERT-family encoder whose sentence vector is a pooled hidden-state layer."""

    OPTIONS = (
        Option("layer", int, -2, "Which hidden state becomes the sentence vector: -1 is the last layer, -2 the "
               "penultimate (bert-as-service's default), the lowest value the embedding output.",
               low=-(MAX_LAYERS + 1), high=MAX_LAYERS, runtime=True, label_zh="层",
               why_zh="用哪个隐藏状态作为句向量：-1 为最后一层，-2 为倒数第二层（bert-as-service 的默认值），"
               "最小值为嵌入层输出。"),
        Option("pooling", str, "mean", "How token vectors become one sentence vector: mean and max over the real "
               "tokens, cls takes the [CLS] token, first_last_avg averages the first and last layers' means "
               "(it ignores the layer).", choices=POOLINGS, runtime=True, label_zh="池化",
               why_zh="token 向量如何合成一个句向量：mean 和 max 在真实 token 上取平均和最大值，cls 取 [CLS] token，"
               "first_last_avg 对第一层和最后一层的平均向量再取平均（忽略所选的层）。"),
        LayerMixOption(
            "layer_mix", str, "", "A weighted sum of every hidden state instead of one layer (ELMo's scalar mix): "
            "weights separated by ; or , (one per hidden state, the embedding output first), normalised to sum "
            "to 1; empty uses the layer. The layer probe learns them on labelled pairs and prints this option.",
            runtime=True, label="layer mix", label_zh="层混合",
            why_zh="用所有隐藏状态的加权和代替单独一层（ELMo 的标量混合）：用 ; 或 , 分隔的权重，每个隐藏状态一个，"
            "嵌入层输出在前，使用时归一化为和为 1；留空则使用所选的层。层探针会在有标注的句对上学习这些权重并给出此选项。"),
        Option("max_tokens", int, 256, "Word pieces read per text, [CLS] and [SEP] included; longer texts are "
               "truncated, with a warning.", low=8, high=8192),
        Option("layers", int, 6, "The model's depth as the registry declares it, so the layer choices are right "
               "before the weights are loaded (the loaded model's own depth wins).", low=1, high=MAX_LAYERS),
        RUNTIME_OPTION,
    )
    default_batch_size = 32

    onnx_prefix = "bert"

    def _load(self, path: str) -> None:
        from transformers import AutoModel, AutoTokenizer

        kw = hf_load_kwargs(self.spec)
        self.tokenizer = AutoTokenizer.from_pretrained(path, **kw)
        self.net = AutoModel.from_pretrained(path, dtype=self.torch_dtype, **kw).to(self.device).eval()
        self.n_layers = int(self.net.config.num_hidden_layers)
        self.max_tokens = self.cap_tokens(self.options["max_tokens"], self.net.config)

    def _export(self, path: str) -> OnnxRunner:
        """Export the network with *every* hidden state as one output (layers x batch x tokens x hidden), so the
        run-time layer and pooling options work on the ONNX path too; the extra outputs are tensors the forward
        pass computes anyway (a copy of a few MB per batch)."""
        import torch

        return self.export_onnx(
            path, self.net, lambda net, inputs: torch.stack(net(**inputs, output_hidden_states=True).hidden_states),
            "hidden_states", what="hidden_states")

    def option_specs(self) -> tuple[Option, ...]:
        """The declared options, with ``layer`` narrowed to this model's hidden states: -(L + 1)..L."""
        return _with_depth(self.OPTIONS, self.n_layers)

    @classmethod
    def declared_options(cls, spec: ModelSpec) -> tuple[Option, ...]:
        """Before loading, ``layer`` is narrowed to the depth the registry declares (``layers``)."""
        declared = next(o for o in cls.OPTIONS if o.name == "layers")
        depth = spec.options.get("layers", declared.default)
        return _with_depth(cls.OPTIONS, int(depth)) if isinstance(depth, int) and depth > 0 else cls.OPTIONS

    def _apply_options(self) -> None:
        # The registry's layer is checked against this model's depth here (the declaration only knew a bound).
        specs = {o.name: o for o in self.option_specs()}
        self.layer = specs["layer"].check(self.options["layer"], self.key)
        self.pooling = str(self.options["pooling"])
        # likewise the mix's count: the declaration may not have known the depth
        self.mix = parse_layer_mix(specs["layer_mix"].check(self.options["layer_mix"], self.key), self.n_layers + 1,
                                   self.key)

    @property
    def dim(self) -> int:
        return int(self.net.config.hidden_size)

    def info(self) -> dict[str, Any]:
        out = super().info()
        out.update(dim=self.dim, layers=self.n_layers, layer=self.layer, pooling=self.pooling)
        return out

    def _forward_batches(self, texts: list[str], batch_size: int, progress: ProgressFn | None, fn) -> None:
        """Run length-sorted batches through the network and hand ``(indices, hidden_states, mask)`` to ``fn``."""
        import torch

        done = 0
        for idx in length_sorted_batches([len(t) for t in texts], batch_size):
            # The lock covers one batch, not the whole request: another visitor's pair waits one batch at most.
            with self.lock, torch.inference_mode():
                batch = self.tokenizer(
                    [texts[i] for i in idx], padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt"
                ).to(self.device)
                if self.onnx is not None:
                    hs = torch.from_numpy(self.onnx({k: v.numpy() for k, v in batch.items()})[0])
                    fn(idx, tuple(hs.unbind(0)), batch["attention_mask"])
                else:
                    out = self.net(**batch, output_hidden_states=True)
                    fn(idx, out.hidden_states, batch["attention_mask"])
            done += len(idx)
            if progress:
                progress(done, len(texts))

    def _encode(self, texts: list[str], batch_size: int, show_progress_bar: bool, progress: ProgressFn | None) -> Encoding:
        vecs = np.zeros((len(texts), self.dim), dtype=np.float32)

        def take(idx, hs, mask):
            vecs[idx] = pool(hs, mask, self.layer, self.pooling, self.mix).cpu().numpy()

        self._forward_batches(texts, batch_size, progress, take)
        warnings = self.truncation_warnings(texts)
        unit, ok = normalize_rows(vecs)
        return Encoding(unit, ok, warnings)

    def encode_layers(
        self, texts: list[str], poolings: tuple[str, ...] = ("mean", "cls", "max"), batch_size: int | None = None,
        progress: ProgressFn | None = None,
    ) -> dict[str, np.ndarray]:
        """Every layer pooled every way, in one pass: ``{pooling: array (n_layers + 1, n, d)}`` (not normalised).

        ``"first_last_avg"`` gives shape ``(1, n, d)``. Used by the layer probe.
        """
        n_h = self.n_layers + 1
        out = {p: np.zeros((1 if p == "first_last_avg" else n_h, len(texts), self.dim), dtype=np.float32) for p in poolings}

        def take(idx, hs, mask):
            for p in poolings:
                if p == "first_last_avg":
                    out[p][0, idx] = pool(hs, mask, -1, p).cpu().numpy()
                else:
                    for layer in range(n_h):
                        out[p][layer, idx] = pool(hs, mask, layer, p).cpu().numpy()

        self._forward_batches(texts, batch_size or self.default_batch_size, progress, take)
        return out


def _with_depth(options: tuple[Option, ...], depth: int) -> tuple[Option, ...]:
    """``layer``'s range and ``layer_mix``'s count for a model of ``depth`` layers (``depth + 1`` hidden states)."""
    def fit(o: Option) -> Option:
        if o.name == "layer":
            return o.with_range(-(depth + 1), depth)
        if isinstance(o, LayerMixOption):
            return replace(o, states=depth + 1)
        return o

    return tuple(fit(o) for o in options)


def format_layer_mix(weights: Sequence[float], digits: int = 3) -> str:
    """Weights as the ``layer_mix`` option writes them: ``"0.012;0.3;..."`` (``digits`` significant digits each;
    the family normalises on use, so the rounding does not have to sum to 1). Semicolons, not commas: the CLI's
    ``--models`` splits models at commas."""
    return ";".join(f"{float(w):.{digits}g}" if math.isfinite(float(w)) else "0" for w in weights)


Model = BertPoolingModel
