"""The two roles a model can play, and the result objects that carry warnings with the numbers.

* An :class:`Encoder` maps texts to vectors: ``encode(texts) -> np.ndarray`` of shape ``(n, d)``; the score
  of a pair is the cosine of its two vectors.
* A :class:`PairScorer` reads both texts of a pair together: ``score(a, b) -> np.ndarray`` of shape ``(n,)``
  and ``rank(query, documents)``, like sentence-transformers' ``CrossEncoder``.

A family subclasses one role or both (ESIM is a pair scorer that also gives an "encoder vector"); pages ask the
backend which roles a model has (:meth:`backend.serving.Backend.roles`) instead of trying and failing.

Every call also reports per-text warnings (empty text, unknown words, truncation, a language the model was
not trained on) through the ``*_detailed`` variants, so the dashboard and the command line can say *why* a
number looks the way it does. A score that cannot be defined (e.g. every word unknown) is ``NaN`` in the
array **and** has a warning: callers turn it into ``None``/"no score", never into a silent NaN.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from backend.options import Option, validate_options
from backend.options import defaults as option_defaults
from backend.registry import NEUTRAL_OPTIONS, ModelSpec
from backend.text import clean_text, convert_script, detect_language, has_words, script_name

ProgressFn = Callable[[int, int], None]
"""``progress(done, total)``: called as batches finish."""


@dataclass
class Encoding:
    """Vectors for a list of texts, with what went wrong for each.

    Attributes
    ----------
    vectors : np.ndarray, shape (n, d), float32
        L2-normalised rows; a row is all zeros where ``valid`` is False.
    valid : np.ndarray, shape (n,), bool
        False where no vector could be made (empty text, every word unknown).
    warnings : list of list of str
        Human-readable warnings per text (may be empty lists).
    """

    vectors: np.ndarray
    valid: np.ndarray
    warnings: list[list[str]]

    def __len__(self) -> int:
        return len(self.warnings)


@dataclass
class PairScores:
    """Scores for aligned pairs ``(a[i], b[i])``.

    Attributes
    ----------
    scores : np.ndarray, shape (n,), float32
        Similarity per pair; NaN where undefined (then ``warnings[i]`` says why).
    warnings : list of list of str
        Warnings per pair (both sides' warnings, prefixed "A:"/"B:").
    model : str
        Key of the model that actually scored (a language variant may stand in for the requested one).
    """

    scores: np.ndarray
    warnings: list[list[str]]
    model: str = ""


ENCODER = "encoder"
PAIR_SCORER = "pair_scorer"
Role = str
"""``"encoder"`` (gives sentence vectors) or ``"pair_scorer"`` (reads both sentences of a pair together)."""


def truncation_message(n_tokens: int, limit: int, cut_after: str, unit: str = "tokens", kept: int | None = None,
                       side: str = "") -> str:
    """The one wording every family uses for "this text was cut": how long it was, the limit, where it was cut.

    ``kept`` is the number of the text's own tokens read when the limit also counts special tokens
    ([CLS]/[SEP]); ``side`` names which text of a pair was cut ("A"/"B") when the limit is per pair.
    """
    read = limit if kept is None else kept
    who = f"{side} " if side else ""
    return (f"{who}truncated: {n_tokens} {unit} > limit {limit}; only the first {read} were read "
            f"(cut after {cut_after!r})")


#: one option every family has (added to each family's OPTIONS when the class is made): traditional <-> simplified
#: Chinese before the model reads a text. Off by default; "Why these scores?" shows the text as read.
SCRIPT_OPTION = Option(
    "script", str, "as-is",
    "Chinese characters as written, or converted to simplified or traditional (OpenCC) before the model reads "
    "them: a model trained on simplified text reads 銀行卡 as rare characters.",
    choices=("as-is", "simplified", "traditional"), runtime=True, label="Chinese script",
    label_zh="中文繁简", why_zh="按原样读取，或在模型读取前用 OpenCC 转成简体或繁体：用简体训练的模型会把「銀行卡」当作生僻字。",
)


class SentenceModel:
    """What every model family shares: identity, declared options, languages, a lock, the model card.

    A family does not subclass this directly but one or both *roles*: :class:`Encoder` (texts -> vectors)
    and :class:`PairScorer` (pairs -> scores, reading both texts together). ESIM is both. The roles are types,
    so ``isinstance(model, PairScorer)`` is the whole test for "scores pairs natively"; the backend answers
    :meth:`~backend.serving.Backend.roles` from the family class without loading weights.

    Parameters
    ----------
    spec : ModelSpec
        The registry entry; its ``options`` are checked against :attr:`OPTIONS` (unknown names, wrong types,
        values out of range raise :class:`~backend.options.OptionError`) and completed with the defaults.
    device : str
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``.
    """

    #: the family's options, declared once (name, type, choices/range, default, why); see backend/options.py.
    #: :data:`SCRIPT_OPTION` is appended to every family's own declaration.
    OPTIONS: tuple[Option, ...] = (SCRIPT_OPTION,)
    #: languages the weights were trained on ("en", "zh"); texts in others get a warning.
    languages: tuple[str, ...] = ("en",)
    #: True when ``score(a, b) == score(b, a)`` by construction (the contract tests check it).
    symmetric: bool = True
    #: True when merging concurrent requests into one forward pass pays (a network); False for a table lookup
    #: such as word vectors, which would only pay the hand-over to the batching thread (backend/serving/batching.py).
    batchable: bool = True
    #: False for families that always compute on the CPU: a Ray job then gives their actors no GPU.
    runs_on_gpu: bool = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("OPTIONS")
        if own is not None and not any(o.name == SCRIPT_OPTION.name for o in own):
            cls.OPTIONS = (*own, SCRIPT_OPTION)

    def _read_as(self, texts: list[str]) -> tuple[list[str], dict[str, str]]:
        """``texts`` in the script the ``script`` option asks for, and ``{original: as read}`` for those changed."""
        to = str(self.options.get(SCRIPT_OPTION.name, "as-is"))
        if to == "as-is":
            return texts, {}
        out = [convert_script(t, to) for t in texts]
        return out, {t: c for t, c in zip(texts, out, strict=True) if c != t}

    def __init__(self, spec: ModelSpec, device: str = "cpu") -> None:
        checked = validate_options(self.OPTIONS, spec.options, spec.key)
        # Every option explicit: the cache key (config_id) is then the same whether a default was written in
        # the registry or not.
        self.spec = spec.with_options(**{**option_defaults(self.OPTIONS), **checked})
        self.device = device
        # One lock per model, held per forward batch (never across a whole request, so one visitor's big job
        # does not make another wait for it): HF fast tokenizers are not thread-safe, and Streamlit serves
        # sessions as threads.
        self.lock = threading.RLock()
        self.load_seconds: float = 0.0

    # ----------------------------------------------------------------------------------------- identity
    @classmethod
    def roles_of(cls) -> frozenset[Role]:
        """The roles this family plays, from its base classes."""
        return frozenset(r for r, base in ((ENCODER, Encoder), (PAIR_SCORER, PairScorer)) if issubclass(cls, base))

    @property
    def roles(self) -> frozenset[Role]:
        """``{"encoder"}``, ``{"pair_scorer"}`` or both."""
        return self.roles_of()

    @property
    def key(self) -> str:
        """Registry key (``"w2v"``, ``"bert"``, ...)."""
        return self.spec.key

    @property
    def config_id(self) -> str:
        """Stable id of everything that changes this model's output (key, source, options)."""
        return self.spec.config_id_with(type(self).weights_digest(self.spec))

    @property
    def options(self) -> dict[str, Any]:
        """Every option's current value (registry values and run-time changes over the defaults)."""
        return dict(self.spec.options)

    def option_specs(self) -> tuple[Option, ...]:
        """The declared options, with ranges narrowed to these weights where they depend on them."""
        return self.declared_options(self.spec)

    @classmethod
    def weights_digest(cls, spec: ModelSpec) -> str:
        """A fingerprint of the files this entry's weights come from (part of :attr:`config_id`, so caches never
        serve a retrained model's old vectors or scores). A family whose weights live in several places (a hybrid)
        combines them."""
        from backend.registry import weights_digest

        return weights_digest(spec.source)

    @classmethod
    def declared_options(cls, spec: ModelSpec) -> tuple[Option, ...]:
        """The options as far as the registry entry tells before any weights are loaded (BERT's layer range
        from its declared depth)."""
        return cls.OPTIONS

    def info(self) -> dict[str, Any]:
        """Facts for the model card: family, roles, source, dimension, parameters, device, dtype, ...

        A family adds its own (``out = super().info(); out.update(...)``): the card shows every pair, in this
        order, translating the names it knows (:func:`fact_rows`). Values are JSON-able (the server sends them as
        they are): strings, numbers, booleans, lists and flat dicts of those; None means "not known" and is
        left off the card. The registry's ``facts`` table comes first, so a family's measured value wins.
        """
        return {
            **self.spec.facts,
            "key": self.key,
            "family": self.spec.family,
            "roles": sorted(self.roles),
            "label": self.spec.label,
            "source": self.spec.source,
            "language": self.spec.language,
            # Options at their neutral value (script as-is, no layer mix) change nothing: the card leaves them out.
            "options": {k: v for k, v in self.spec.options.items() if NEUTRAL_OPTIONS.get(k, object()) != v},
            "device": self.device,
            "load_seconds": round(self.load_seconds, 2),
            "note": self.spec.note,
            "licence": self.spec.licence,
            "research_only": self.spec.research_only,
            "stands_in_for": self.spec.stands_in_for,
        }

    def with_options(self, **options: Any) -> SentenceModel:
        """A view of this model with other *run-time* options (layer, pooling, weighting), sharing weights.

        Raises
        ------
        OptionError
            An option this family does not declare, a load-time option, or a value it does not accept.
        """
        checked = validate_options(self.option_specs(), options, self.key, runtime_only=True)
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.spec = self.spec.with_options(**checked)
        clone._apply_options()
        return clone

    def _apply_options(self) -> None:
        """Hook: re-read ``self.options`` after :meth:`with_options`."""

    default_batch_size: int = 64

    def _language_warnings(self, text: str) -> list[str]:
        if not text:
            return []
        lang = detect_language(text)
        if lang in ("unknown",) or lang in self.languages:
            return []
        trained = "/".join(LANGUAGE_NAMES.get(x, x) for x in self.languages)
        if lang == "mixed":
            if "zh" in self.languages and "en" in self.languages:
                return []
            return [f"mixed Chinese/English text; {self.key} was trained on {trained} only"]
        name = LANGUAGE_NAMES.get(lang) or (script_name(text).title() or "another script")
        return [f"text looks {name}; {self.key} was trained on {trained} only"]


def fact_text(value: Any) -> str:
    """One model-card value as a person reads it: ``True`` -> ``"yes"``, ``0.76941`` -> ``"0.7694"``, a list
    joined by commas, a dict as ``name=value`` pairs; ``""`` for None or an empty value (the row is left off)."""
    if value is None:
        return ""
    if isinstance(value, bool):  # before int: a bool is an int
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={fact_text(v)}" for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(fact_text(v) for v in value)
    return str(value)


def fact_rows(info: dict[str, Any], skip: Collection[str] = ()) -> list[tuple[str, str]]:
    """Every fact of :meth:`SentenceModel.info` as ``(name, text)``, in the family's order: the model card's rows.

    Parameters
    ----------
    info : dict
        A model's facts (from the model itself or the server's ``/v1/info``).
    skip : collection of str
        Names the card shows elsewhere (its title, its warnings) or in a form of its own.

    Returns
    -------
    list of (str, str)
        The name with ``_`` as spaces (``"load_seconds"`` -> ``"load seconds"``: the catalogue key a
        translation is looked up by) and :func:`fact_text` of the value; facts with no value are left out.
    """
    rows = []
    for name, value in info.items():
        text = "" if name in skip else fact_text(value)
        if text:
            rows.append((name.replace("_", " "), text))
    return rows


#: how warnings name a detected language.
LANGUAGE_NAMES = {"en": "English", "zh": "Chinese", "ja": "Japanese", "ko": "Korean"}
#: the one reason every family gives for a text of emoji, punctuation or symbols only.
NO_WORDS = "no words found (only punctuation, emoji or symbols)"


class Encoder(SentenceModel):
    """The encoder role: texts -> L2-normalised vectors; a pair's score is the cosine of its two vectors.

    A family implements :meth:`_encode` on cleaned, non-empty texts and :attr:`dim`; this class does the
    cleaning, empty-text handling and warnings (like ``SentenceTransformer.encode``, one string in gives a
    1-D array out).
    """

    # ----------------------------------------------------------------------------------------- encoding
    def encode(
        self,
        texts: str | Sequence[str],
        batch_size: int | None = None,
        show_progress_bar: bool = False,
        progress: ProgressFn | None = None,
    ) -> np.ndarray:
        """Encode texts as L2-normalised float32 vectors.

        Parameters
        ----------
        texts : str or sequence of str
            One text gives a 1-D array; a list gives shape ``(n, d)``.
        batch_size : int, optional
            Texts per forward pass (family default when None).
        show_progress_bar : bool
            Print a tqdm bar on stderr.
        progress : callable, optional
            ``progress(done, total)`` callback (the dashboard's progress bar).

        Returns
        -------
        np.ndarray
            Shape ``(d,)`` or ``(n, d)``; zero rows for texts with no vector (see :meth:`encode_detailed`).
        """
        single = isinstance(texts, str)
        enc = self.encode_detailed([texts] if single else list(texts), batch_size, show_progress_bar, progress)
        return enc.vectors[0] if single else enc.vectors

    def encode_detailed(
        self,
        texts: Sequence[str],
        batch_size: int | None = None,
        show_progress_bar: bool = False,
        progress: ProgressFn | None = None,
    ) -> Encoding:
        """Like :meth:`encode` but returns an :class:`Encoding` with validity and warnings per text."""
        cleaned, changed = self._read_as([clean_text(t) for t in texts])
        warnings: list[list[str]] = [self._language_warnings(t) for t in cleaned]
        if changed:
            back = {c: o for o, c in changed.items()}
            for i, t in enumerate(cleaned):
                if t in back:
                    warnings[i].append(f"read as {self.options['script']} Chinese (OpenCC): {t}")
        idx = [i for i, t in enumerate(cleaned) if t and has_words(t)]
        for i, t in enumerate(cleaned):
            if not t:
                warnings[i].append("empty text: no vector")
            elif not has_words(t):
                warnings[i].append(f"{NO_WORDS}: no vector")
        vectors = np.zeros((len(cleaned), self.dim), dtype=np.float32)
        valid = np.zeros(len(cleaned), dtype=bool)
        if idx:
            sub = self._encode([cleaned[i] for i in idx], batch_size or self.default_batch_size, show_progress_bar, progress)
            rows = np.asarray(idx, dtype=np.int64)
            vectors[rows] = sub.vectors
            valid[rows] = sub.valid
            for j, w in enumerate(sub.warnings):
                if w:
                    warnings[idx[j]].extend(w)
        elif progress is not None:
            progress(len(cleaned), len(cleaned))
        return Encoding(vectors, valid, warnings)

    @property
    def dim(self) -> int:
        """Output dimension of :meth:`encode`."""
        raise NotImplementedError

    def _encode(self, texts: list[str], batch_size: int, show_progress_bar: bool, progress: ProgressFn | None) -> Encoding:
        """Encode cleaned, non-empty texts (each family implements this)."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------------------ scoring
    def score(self, a: Sequence[str], b: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """Similarity of each pair ``(a[i], b[i])``; shape ``(n,)``, NaN where undefined."""
        return self.score_detailed(a, b, batch_size).scores

    def score_detailed(
        self,
        a: Sequence[str],
        b: Sequence[str],
        batch_size: int | None = None,
        progress: ProgressFn | None = None,
    ) -> PairScores:
        """Cosine of the two texts' vectors, for each pair, with the reasons for any missing score."""
        a, b = list(a), list(b)
        if len(a) != len(b):
            raise ValueError(f"a and b must have the same length ({len(a)} != {len(b)})")
        # Encode the union once: duplicates (a text on both sides, repeated rows) cost nothing extra.
        uniq = list(dict.fromkeys([*a, *b]))
        pos = {t: i for i, t in enumerate(uniq)}
        enc = self.encode_detailed(uniq, batch_size, progress=progress)
        ia = np.fromiter((pos[t] for t in a), dtype=np.int64, count=len(a))
        ib = np.fromiter((pos[t] for t in b), dtype=np.int64, count=len(b))
        return cosine_pair_scores(enc, ia, ib, self.key)


#: the note on a pair of identical texts, scored without the model.
IDENTICAL_NOTE = "identical texts (after normalisation): top score, the model was not run"


class PairScorer(SentenceModel):
    """The pair-scorer role: reads both texts of a pair together (ESIM, a cross-encoder) and scores it.

    A family implements :meth:`_score_pairs` on cleaned, non-empty, de-duplicated pairs; this class cleans the
    texts, answers empty text with NaN and a reason, adds language warnings, scores each distinct pair once and
    restores input order. :meth:`rank` orders documents for a query, like ``CrossEncoder.rank``.
    """

    #: what the score means, for model cards and axis labels.
    score_meaning: str = "similarity in [0, 1], not a cosine"
    #: the score of a pair whose two texts are the same after normalisation (the model is not run for it).
    IDENTICAL_SCORE: float = 1.0

    def score(self, a: Sequence[str], b: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """Score of each pair ``(a[i], b[i])``; shape ``(n,)``, NaN where undefined."""
        return self.score_detailed(a, b, batch_size).scores

    def score_detailed(
        self,
        a: Sequence[str],
        b: Sequence[str],
        batch_size: int | None = None,
        progress: ProgressFn | None = None,
    ) -> PairScores:
        """Score pairs and say why any score is missing.

        Parameters
        ----------
        a, b : sequence of str
            Aligned texts (same length).
        batch_size : int, optional
            Pairs per forward pass (family default when None).
        progress : callable, optional
            ``progress(done, total)`` over the distinct pairs scored.

        Returns
        -------
        PairScores
            NaN with a warning where a side is empty (or the family finds nothing to read in it).
        """
        a, b = list(a), list(b)
        if len(a) != len(b):
            raise ValueError(f"a and b must have the same length ({len(a)} != {len(b)})")
        ca, changed_a = self._read_as([clean_text(t) for t in a])
        cb, changed_b = self._read_as([clean_text(t) for t in b])
        converted = set(changed_a.values()) | set(changed_b.values())
        lang = {t: self._language_warnings(t) for t in {*ca, *cb}}
        for t in converted:
            lang[t] = [*lang[t], f"read as {self.options['script']} Chinese (OpenCC): {t}"]
        scores = np.full(len(ca), np.nan, dtype=np.float32)
        warnings: list[list[str]] = []
        readable = {t: bool(t) and has_words(t) for t in lang}
        for x, y in zip(ca, cb, strict=True):
            w = [f"A: {m}" for m in lang[x]] + [f"B: {m}" for m in lang[y]]
            for side, text in (("A", x), ("B", y)):
                if not text:
                    w.append(f"{side}: empty text: no score")
                elif not readable[text]:
                    w.append(f"{side}: {NO_WORDS}: no score")
            warnings.append(w)
        # A text against itself (after normalisation: NFKC, spaces) is a duplicate by definition: the top of the
        # scale, without asking a model trained on graded pairs, which would pull it toward the middle.
        for i, (x, y) in enumerate(zip(ca, cb, strict=True)):
            if x == y and readable[x]:
                scores[i] = self.IDENTICAL_SCORE
                warnings[i].append(IDENTICAL_NOTE)
        pairs = list(dict.fromkeys((x, y) for x, y in zip(ca, cb, strict=True)
                                   if readable[x] and readable[y] and x != y))
        if pairs:
            ps = self._score_pairs([p[0] for p in pairs], [p[1] for p in pairs],
                                   batch_size or self.default_batch_size, progress)
            found = {p: (float(s), w) for p, s, w in zip(pairs, ps.scores.tolist(), ps.warnings, strict=True)}
            for i, (x, y) in enumerate(zip(ca, cb, strict=True)):
                if (x, y) in found:
                    s, w = found[(x, y)]
                    scores[i] = s
                    warnings[i].extend(w)
        elif progress is not None:
            progress(len(ca), len(ca))
        return PairScores(scores, warnings, self.key)

    def _score_pairs(self, a: list[str], b: list[str], batch_size: int, progress: ProgressFn | None) -> PairScores:
        """Score cleaned, non-empty, distinct pairs (each family implements this).

        Returns
        -------
        PairScores
            One score per pair (NaN where the family finds nothing to read, with a warning prefixed "A:"/"B:").
        """
        raise NotImplementedError

    def rank(self, query: str, documents: Sequence[str], top_k: int | None = None,
             return_documents: bool = False) -> list[dict[str, Any]]:
        """Documents ordered by their score with ``query``, best first (unscorable ones last).

        Returns
        -------
        list of dict
            ``{"corpus_id": i, "score": float}`` (plus ``"text"`` with ``return_documents``), like
            ``CrossEncoder.rank``.
        """
        docs = list(documents)
        if not docs:
            return []
        s = self.score([query] * len(docs), docs).astype(np.float64)
        order = np.argsort(np.where(np.isfinite(s), -s, np.inf), kind="stable")
        out = [{"corpus_id": int(i), "score": float(s[i])} | ({"text": docs[i]} if return_documents else {})
               for i in order]
        return out[:top_k] if top_k is not None else out


def cosine_pair_scores(enc: Encoding, ia: np.ndarray, ib: np.ndarray, model: str) -> PairScores:
    """Cosine scores for pairs of rows of an :class:`Encoding` (rows are already unit length).

    Computed in float32 from float32 vectors; clipped to [-1, 1] against rounding.
    """
    va, vb = enc.vectors[ia], enc.vectors[ib]
    scores = np.clip(np.einsum("ij,ij->i", va, vb, dtype=np.float32), -1.0, 1.0).astype(np.float32)
    ok = enc.valid[ia] & enc.valid[ib]
    scores[~ok] = np.nan
    # A text's "no vector" is the pair's "no score": the same words a pair scorer uses for the same text.
    said = [[w.replace(": no vector", ": no score") for w in ws] for ws in enc.warnings]
    warnings = [
        [f"A: {w}" for w in said[i]] + [f"B: {w}" for w in said[j]]
        for i, j in zip(ia.tolist(), ib.tolist(), strict=True)
    ]
    return PairScores(scores, warnings, model)


def normalize_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """L2-normalise rows in float32; returns ``(unit_rows, nonzero_mask)`` (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1)
    ok = norms > 1e-12
    out = np.zeros_like(x)
    out[ok] = x[ok] / norms[ok, None]
    return out, ok


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[np.ndarray]:
    """Index batches of items sorted by decreasing length (fewer pad tokens; the longest batch first so
    an out-of-memory error shows up at once). Callers scatter results back with the indices."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
