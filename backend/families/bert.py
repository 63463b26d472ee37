"""Raw BERT with hidden-state pooling, the way bert-as-service embeds sentences.

bert-as-service (Han Xiao, 2018) takes the **penultimate** layer (``hidden_states[-2]``) and averages it
over the real tokens (``REDUCE_MEAN`` with the input mask, so [CLS] and [SEP] count). Its FAQ's reason: the
last layer is too close to the pre-training targets (masked-LM / next sentence), the first layers too close
to the raw tokens; the one before last is a reasonable compromise. The dashboard's layer probe measures it.

``hidden_states`` follows transformers' convention: index 0 is the embedding output, 1..L the layers.

Options are declared in :attr:`BertPoolingModel.OPTIONS`. ``first_last_avg`` averages the masked means of the
first transformer layer (``hidden_states[1]``) and the last one, as in Su et al.'s BERT-whitening experiments.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from backend.base import Encoder, Encoding, ProgressFn, length_sorted_batches, normalize_rows
from backend.families._hf import TransformerModel, hf_load_kwargs
from backend.families._onnx import RUNTIME_OPTION, OnnxRunner
from backend.options import Option
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


def pool(hidden_states: tuple[torch.Tensor, ...], mask: torch.Tensor, layer: int, pooling: str) -> torch.Tensor:
    """Pool one layer of ``hidden_states`` into sentence vectors (fp32).

    Parameters
    ----------
    hidden_states : tuple of Tensor, each (batch, seq, hidden)
    mask : Tensor (batch, seq)
        Attention mask (1 = real token).
    layer : int
    pooling : {"mean", "cls", "max", "first_last_avg"}
    """
    if pooling == "first_last_avg":
        return ((_masked_mean(hidden_states[1], mask) + _masked_mean(hidden_states[-1], mask)) / 2).float()
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
        self.layer = next(o for o in self.option_specs() if o.name == "layer").check(self.options["layer"], self.key)
        self.pooling = str(self.options["pooling"])

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
            vecs[idx] = pool(hs, mask, self.layer, self.pooling).cpu().numpy()

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
    return tuple(o.with_range(-(depth + 1), depth) if o.name == "layer" else o for o in options)


Model = BertPoolingModel
