"""ESIM, the Enhanced Sequential Inference Model, all of it in this single file.

References
----------
Qian Chen, Xiaodan Zhu, Zhen-Hua Ling, Si Wei, Hui Jiang, Diana Inkpen. "Enhanced LSTM for Natural
Language Inference". ACL 2017, pp. 1657-1668 (arXiv:1609.06038). Section numbers below refer to it.

The network reads both sentences together (a *cross-encoder*, unlike the sentence encoders of the other
families), top to bottom:

1. embedding (GloVe-initialised for English, learnt for Chinese);
2. input encoding: a BiLSTM over each sentence (Sec. 3.1, eq. 1-2);
3. local inference: soft alignment ``e_ij = a_i . b_j`` and attention-weighted summaries of the other side,
   with padding masked out of both softmaxes (eq. 11-13);
4. enhancement ``[a; ã; a - ã; a * ã]`` and a ReLU projection back to ``projection_dim`` (eq. 14-15, 16 of F);
5. composition: a second BiLSTM over the enhanced sequences (eq. 17-18);
6. pooling: masked average and max of both sides, concatenated (eq. 19-21);
7. an MLP head (tanh hidden layer, Sec. 3.3) giving one logit.

Our changes, for a similarity dashboard rather than 3-way NLI on 550k SNLI pairs: one output logit
(``sigmoid`` = similarity in [0, 1], trained as regression on ``score / 5`` or as binary classification),
smaller layers (100 instead of 300 units, for >1000 pairs/s on two CPU cores), and an optional exact-match
flag appended to each word vector (whether the word occurs in the other sentence; DIIN/DRCN-style lexical
feature, off unless the config turns it on) because STS-B has only 5.7k training pairs.

The bottom of the file holds the vocabulary and the checkpoint files (``model.safetensors`` + ``config.json``
+ ``vocab.txt``), which are loaded without unpickling anything.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, NamedTuple

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from backend.text import tokenize

PAD, UNK = "[PAD]", "[UNK]"
CONFIG_FILE, WEIGHTS_FILE, VOCAB_FILE = "config.json", "model.safetensors", "vocab.txt"


@dataclass
class ESIMConfig:
    """Hyper-parameters of the network and of its text handling (saved as ``config.json``)."""

    # Rows of the embedding matrix; set from the vocabulary when a model is trained (pad and unk included).
    vocab_size: int = 2
    # GloVe 6B 50-d is the one pretrained English table we can ship offline; Chinese vectors are learnt
    # from scratch at the same size.
    embedding_dim: int = 50
    # Units per LSTM direction. Chen et al. use 300 on SNLI; 100 keeps >1000 STS pairs/s on two CPU cores
    # and still has more capacity than 5.7k training pairs can use.
    hidden_size: int = 100
    # Width of the ReLU projection F of the enhanced vectors (the paper projects back to hidden_size).
    projection_dim: int = 100
    # Hidden units of the tanh MLP head.
    mlp_dim: int = 100
    # Dropout on embeddings, projections and the MLP input; the paper uses 0.5 on SNLI, a small data set
    # like STS-B needs about as much.
    dropout: float = 0.5
    # Tokens per sentence; longer sentences are truncated (with a warning). STS-B's longest English sentence
    # has 56 words; Chinese characters run about 1.6 times as many, so the Chinese checkpoint is trained with 128.
    max_len: int = 64
    # Keep the pretrained vectors fixed: with 5.7k pairs, fine-tuning moves only the training words away from
    # the words the model first meets at test time.
    freeze_embeddings: bool = True
    # Append "this word also occurs in the other sentence" to each word vector (see the module docstring).
    exact_match: bool = True
    # What the logit means: "regression" (sigmoid of score / label_max) or "binary" (P(similar)).
    objective: Literal["regression", "binary"] = "regression"
    # Top of the training score scale (5 for STS-B); a similarity s in [0, 1] maps back to s * label_max.
    label_max: float = 5.0
    # Tokenisation: the language passed to backend.text.tokenize and Chinese granularity ("char" or "word").
    language: str = "en"
    chinese: Literal["char", "word"] = "char"
    # Facts about training for the model card and info(); not used by the network.
    training: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ESIMConfig:
        """Build from ``config.json`` contents; unknown keys are an error (a config from another version)."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"{CONFIG_FILE}: unknown ESIM config key(s) {sorted(unknown)}")
        return cls(**data)


class ESIMOutput(NamedTuple):
    """What :meth:`ESIM.forward` returns.

    Attributes
    ----------
    logits : torch.Tensor, shape (B,)
        One logit per pair; ``sigmoid(logits)`` is the similarity in [0, 1].
    attention : torch.Tensor, shape (B, La, Lb)
        Soft alignment of each token of ``a`` over the tokens of ``b`` (rows sum to 1 over real tokens;
        padded rows and columns are 0).
    """

    logits: torch.Tensor
    attention: torch.Tensor


def lengths_to_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """``(B,)`` lengths -> ``(B, max_len)`` bool mask, True on real tokens."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def masked_avg_max(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average and max over real positions of ``x`` (B, L, D) -> (B, 2D) (eq. 19-20)."""
    m = mask.unsqueeze(-1).to(x.dtype)
    avg = (x * m).sum(1) / m.sum(1).clamp_min(1.0)
    # Padded positions must never win the max: fill them with the most negative representable value.
    mx = x.masked_fill(~mask.unsqueeze(-1), torch.finfo(x.dtype).min).max(1).values
    return torch.cat([avg, mx], dim=-1)


class BiLSTM(nn.Module):
    """A one-layer bidirectional LSTM that ignores padding.

    Packing makes the backward direction start at each sentence's last real token, so a sentence's
    states do not depend on how much padding its batch needs (a plain LSTM would read the pads first).
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden_size, batch_first=True, bidirectional=True)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``x`` (B, L, D_in), ``lengths`` (B,) -> (B, L, 2 * hidden), zeros at padded positions."""
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return out


class ESIM(nn.Module):
    """The ESIM network (sequential variant, no tree-LSTM).

    Parameters
    ----------
    config : ESIMConfig
    """

    def __init__(self, config: ESIMConfig) -> None:
        super().__init__()
        self.config = c = config
        self.embedding = nn.Embedding(c.vocab_size, c.embedding_dim, padding_idx=0)
        self.embedding.weight.requires_grad_(not c.freeze_embeddings)
        self.dropout = nn.Dropout(c.dropout)
        in_dim = c.embedding_dim + (1 if c.exact_match else 0)
        self.input_encoder = BiLSTM(in_dim, c.hidden_size)
        # F in eq. 16: one ReLU layer that brings the 4 x 2h enhanced vector back to a small size,
        # which is what keeps the composition LSTM cheap.
        self.projection = nn.Sequential(nn.Linear(8 * c.hidden_size, c.projection_dim), nn.ReLU())
        self.composition = BiLSTM(c.projection_dim, c.hidden_size)
        self.head = nn.Sequential(
            nn.Dropout(c.dropout),
            nn.Linear(8 * c.hidden_size, c.mlp_dim),
            nn.Tanh(),
            nn.Dropout(c.dropout),
            nn.Linear(c.mlp_dim, 1),
        )

    # --------------------------------------------------------------------------------- building blocks
    def embed(self, ids: torch.Tensor, match: torch.Tensor | None) -> torch.Tensor:
        """Word vectors (plus the exact-match flag), with dropout; (B, L) -> (B, L, D_in)."""
        x = self.embedding(ids)
        if self.config.exact_match:
            x = torch.cat([x, match.unsqueeze(-1).to(x.dtype)], dim=-1)
        return self.dropout(x)

    def encode(self, ids: torch.Tensor, lengths: torch.Tensor, match: torch.Tensor | None = None) -> torch.Tensor:
        """Input encoding (eq. 1-2): ``ids`` (B, L) -> (B, L, 2h)."""
        if self.config.exact_match and match is None:
            match = torch.zeros_like(ids, dtype=torch.bool)  # a sentence on its own matches nothing
        return self.input_encoder(self.embed(ids, match), lengths)

    def sentence_vector(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The "ESIM encoder vector": input-encoding states, masked mean + max pooled; (B, 4h), not normalised."""
        mask = lengths_to_mask(lengths, ids.shape[1])
        return masked_avg_max(self.encode(ids, lengths), mask)

    # --------------------------------------------------------------------------------------- forward
    def forward(
        self,
        a_ids: torch.Tensor,
        a_len: torch.Tensor,
        b_ids: torch.Tensor,
        b_len: torch.Tensor,
    ) -> ESIMOutput:
        """Score pairs.

        Parameters
        ----------
        a_ids, b_ids : torch.Tensor, shape (B, La) and (B, Lb), int64
            Token ids, right-padded with 0.
        a_len, b_len : torch.Tensor, shape (B,), int64
            Real lengths (>= 1).

        Returns
        -------
        ESIMOutput
        """
        a_mask = lengths_to_mask(a_len, a_ids.shape[1])
        b_mask = lengths_to_mask(b_len, b_ids.shape[1])
        match_a = match_b = None
        if self.config.exact_match:
            # same[i, j]: token i of a is token j of b (padding and unknown words never match).
            same = (a_ids.unsqueeze(2) == b_ids.unsqueeze(1)) & a_mask.unsqueeze(2) & b_mask.unsqueeze(1)
            same &= (a_ids > 1).unsqueeze(2)
            match_a, match_b = same.any(2), same.any(1)

        # 1-2. input encoding
        a_bar = self.encode(a_ids, a_len, match_a)  # (B, La, 2h)
        b_bar = self.encode(b_ids, b_len, match_b)  # (B, Lb, 2h)

        # 3. soft alignment (eq. 11-13). Padded keys get the most negative value before each softmax so
        # they receive exactly zero weight; padded query rows are zeroed afterwards.
        e = torch.bmm(a_bar, b_bar.transpose(1, 2))  # (B, La, Lb)
        neg = torch.finfo(e.dtype).min
        attn_a = torch.softmax(e.masked_fill(~b_mask.unsqueeze(1), neg), dim=2) * a_mask.unsqueeze(2)
        attn_b = torch.softmax(e.masked_fill(~a_mask.unsqueeze(2), neg), dim=1) * b_mask.unsqueeze(1)
        a_tilde = torch.bmm(attn_a, b_bar)  # (B, La, 2h): what of b each a_i aligns to
        b_tilde = torch.bmm(attn_b.transpose(1, 2), a_bar)  # (B, Lb, 2h)

        # 4. enhancement (eq. 14-15) and projection F
        m_a = torch.cat([a_bar, a_tilde, a_bar - a_tilde, a_bar * a_tilde], dim=-1)
        m_b = torch.cat([b_bar, b_tilde, b_bar - b_tilde, b_bar * b_tilde], dim=-1)
        m_a = self.dropout(self.projection(m_a))
        m_b = self.dropout(self.projection(m_b))

        # 5. composition (eq. 17-18)
        v_a = self.composition(m_a, a_len)
        v_b = self.composition(m_b, b_len)

        # 6. pooling (eq. 19-21) and 7. the head
        v = torch.cat([masked_avg_max(v_a, a_mask), masked_avg_max(v_b, b_mask)], dim=-1)
        logits = self.head(v).squeeze(-1)
        return ESIMOutput(logits, attn_a)

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Number of parameters (embedding included unless ``trainable_only`` and it is frozen)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)


# ------------------------------------------------------------------------------------------ vocabulary
class Vocabulary:
    """Token <-> id map with ``[PAD]`` = 0 and ``[UNK]`` = 1, plus ESIM's tokenisation rule.

    Parameters
    ----------
    tokens : sequence of str
        All tokens in id order; must start with ``[PAD]``, ``[UNK]``.
    language : str
        ``"en"`` or ``"zh"`` (what :func:`backend.text.tokenize` is told).
    chinese : {"char", "word"}
        Chinese granularity.
    """

    def __init__(self, tokens: Sequence[str], language: str = "en", chinese: str = "char") -> None:
        tokens = list(tokens)
        if tokens[:2] != [PAD, UNK]:
            raise ValueError(f"{VOCAB_FILE}: the first two tokens must be {PAD} and {UNK}")
        self.itos = tokens
        self.stoi = {t: i for i, t in enumerate(tokens)}
        if len(self.stoi) != len(tokens):
            raise ValueError(f"{VOCAB_FILE}: duplicate tokens")
        self.language = language
        self.chinese = chinese

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: object) -> bool:
        return token in self.stoi

    def tokenize(self, text: str) -> list[str]:
        """Split a text the way the model was trained to read it."""
        return tokenize(text, "zh" if self.language == "zh" else "en", chinese=self.chinese)  # type: ignore[arg-type]

    def ids(self, tokens: Sequence[str]) -> list[int]:
        """Token ids; unknown tokens map to 1 (``[UNK]``)."""
        get = self.stoi.get
        return [get(t, 1) for t in tokens]


def pad_batch(seqs: Sequence[Sequence[int]], device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id lists into ``(ids (B, L), lengths (B,))`` int64 tensors; every list must be non-empty."""
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    ids = torch.zeros(len(seqs), int(lengths.max()), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return ids.to(device), lengths.to(device)


# ---------------------------------------------------------------------------------------- checkpoints
def save_checkpoint(model: ESIM, vocab: Vocabulary, out_dir: str | Path) -> Path:
    """Write ``model.safetensors``, ``config.json`` and ``vocab.txt`` into ``out_dir``."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if any("\n" in t or "\r" in t for t in vocab.itos):
        raise ValueError("a token contains a line break; it cannot be stored one per line")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / WEIGHTS_FILE), metadata={"format": "pt", "model": "esim"})
    (out / CONFIG_FILE).write_text(json.dumps(asdict(model.config), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / VOCAB_FILE).write_text("\n".join(vocab.itos) + "\n", encoding="utf-8")
    return out


def load_checkpoint(folder: str | Path, device: str = "cpu") -> tuple[ESIM, Vocabulary]:
    """Load a checkpoint written by :func:`save_checkpoint` (safetensors only: nothing is unpickled).

    Raises
    ------
    FileNotFoundError
        When the folder or one of its three files is missing (the message names the file).
    ValueError
        When the files do not fit together (vocabulary size, tensor names or shapes).
    """
    from safetensors.torch import load_file

    folder = Path(folder)
    for name in (CONFIG_FILE, WEIGHTS_FILE, VOCAB_FILE):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"ESIM checkpoint file missing: {folder / name}")
    try:
        config = ESIMConfig.from_dict(json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8")))
    except (json.JSONDecodeError, TypeError) as exc:
        raise ValueError(f"{folder / CONFIG_FILE} is not a valid ESIM config: {exc}") from exc
    tokens = (folder / VOCAB_FILE).read_text(encoding="utf-8").split("\n")
    if tokens and tokens[-1] == "":
        tokens.pop()  # the file ends with a newline
    vocab = Vocabulary(tokens, config.language, config.chinese)
    if len(vocab) != config.vocab_size:
        raise ValueError(
            f"{folder / VOCAB_FILE} has {len(vocab)} tokens but {CONFIG_FILE} says vocab_size={config.vocab_size}"
        )
    model = ESIM(config)
    try:
        state = load_file(str(folder / WEIGHTS_FILE))
    except Exception as exc:  # safetensors raises its own error type for a corrupt header
        raise ValueError(f"{folder / WEIGHTS_FILE} is not a readable safetensors file: {exc}") from exc
    expected = model.state_dict()
    missing, extra = set(expected) - set(state), set(state) - set(expected)
    bad = [k for k in set(expected) & set(state) if expected[k].shape != state[k].shape]
    if missing or extra or bad:
        raise ValueError(
            f"{folder / WEIGHTS_FILE} does not match {CONFIG_FILE}: missing {sorted(missing)}, "
            f"unexpected {sorted(extra)}, wrong shape {sorted(bad)}"
        )
    model.load_state_dict(state)
    model.to(device).eval()
    return model, vocab


# ------------------------------------------------------------------------------------------ inference
@torch.inference_mode()
def predict_ids(
    model: ESIM,
    a: Sequence[Sequence[int]],
    b: Sequence[Sequence[int]],
    batch_size: int = 128,
    device: str = "cpu",
    autocast_dtype: torch.dtype | None = None,
    progress: Any = None,
) -> torch.Tensor:
    """Similarities in [0, 1] for pairs of non-empty id lists, batched by length, in input order.

    Pairs are sorted by their longer side so a batch pads little (SBERT measured +89% on CPU for the same
    trick); the scores are scattered back to input order. ``autocast_dtype`` (bf16/fp16) is used on GPUs;
    the returned similarities are always float32 on the CPU.

    Returns
    -------
    torch.Tensor, shape (n,), float32
    """
    n = len(a)
    out = torch.empty(n, dtype=torch.float32)
    if n == 0:
        return out
    order = sorted(range(n), key=lambda i: -max(len(a[i]), len(b[i])))
    was_training = model.training
    model.eval()
    done = 0
    try:
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            a_ids, a_len = pad_batch([a[i] for i in idx], device)
            b_ids, b_len = pad_batch([b[i] for i in idx], device)
            if autocast_dtype is not None:
                with torch.autocast(device_type=torch.device(device).type, dtype=autocast_dtype):
                    logits = model(a_ids, a_len, b_ids, b_len).logits
            else:
                logits = model(a_ids, a_len, b_ids, b_len).logits
            out[torch.tensor(idx)] = torch.sigmoid(logits.float()).cpu()
            done += len(idx)
            if progress is not None:
                progress(done, n)
    finally:
        model.train(was_training)
    return out
