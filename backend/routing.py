"""The one routing rule: which model reads a text, decided here for every surface.

A model declares language ``variants`` in the registry (``sbert`` -> ``sbert-zh``). Every surface (Compare,
Neighbours, Projection, Batch, the Evaluation lab, the CLI, the HTTP API) asks this module, so a Chinese text never
reaches an English model on one surface and the Chinese model on another:

- **A pair** goes to the ``zh`` variant when *either* side has a Chinese character (``微信支付怎么绑定银行卡？`` /
  ``WeChat Pay如何绑卡？`` is a Chinese pair: the English models cannot read one side at all), else to the ``en``
  variant when a side is English, else stays with the model asked for.
- **A corpus or an embeddings request** (texts whose vectors are compared with each other) goes to *one* model for
  all its texts, chosen by the language most of them are in: vectors of two models cannot be compared. A corpus
  with more than a tenth in the other language gets a note saying so.
- **Options follow the routed model**: an option the user set (a value other than the asked model's own registry
  default) applies to the variant when the variant declares it and accepts the value (``bert:layer=-1`` ->
  ``bert-zh:layer=-1``); otherwise the request is refused naming the option and what the variant accepts, never
  silently dropped. Options left at the asked model's defaults are not carried: the variant runs with its own
  registry defaults (``w2v-zh``'s tuned ``sif_a``, not ``w2v``'s).

Nothing here loads weights; ``specs`` is a callable giving a model's declared options (the backend's
``option_specs``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from backend.options import Option, OptionError
from backend.registry import Registry
from backend.text import clean_text, detect_language, has_cjk

#: a corpus whose minority language is above this share gets a note (its minority is read by the other model).
MIXED_SHARE = 0.1

OptionSpecs = Callable[[str], Sequence[Option]]


@dataclass(frozen=True)
class Route:
    """Where a request goes.

    Attributes
    ----------
    key : str
        The model that answers (the asked one or its variant).
    options : dict
        The options it runs with: the user's, carried over; empty means its own registry defaults.
    asked : str
        The model the caller named.
    note : str or None
        One sentence for the caller when routing changed something (model or a mixed corpus).
    """

    key: str
    options: dict[str, Any] = field(default_factory=dict)
    asked: str = ""
    note: str | None = None

    @property
    def routed(self) -> bool:
        """True when another model than the one asked answers."""
        return self.key != self.asked


def text_language(text: str) -> str | None:
    """``"zh"`` for a text with a Chinese character, ``"en"`` for English, else None (no variant decides)."""
    if has_cjk(text):
        return "zh"
    return "en" if detect_language(text) == "en" else None


def pair_language(a: str, b: str) -> str | None:
    """The language a pair is routed by: ``"zh"`` when either side has a Chinese character, else ``"en"`` when
    either side is English, else None."""
    la, lb = text_language(a), text_language(b)
    if "zh" in (la, lb):
        return "zh"
    return "en" if "en" in (la, lb) else None


def corpus_language(texts: Sequence[str], sample: int = 2000) -> tuple[str | None, float]:
    """``(dominant language, share of the other one)`` of texts (a sample of ``sample`` is enough to count)."""
    step = max(1, len(texts) // sample)
    langs = [text_language(clean_text(t)) for t in list(texts)[::step]]
    zh, en = sum(x == "zh" for x in langs), sum(x == "en" for x in langs)
    if zh + en == 0:
        return None, 0.0
    return ("zh" if zh > en else "en"), min(zh, en) / (zh + en)


def variant(registry: Registry, key: str, lang: str | None) -> str:
    """The registered variant of ``key`` for ``lang`` (``esim`` -> ``esim-zh``), else ``key``.

    A model asked for by its variant's name stays itself (``sbert-zh`` on English text is what the user chose); a
    variant whose ``variants`` names its parent for the other language is followed too.
    """
    if lang is None or key not in registry:
        return key
    v = registry[key].variants.get(lang)
    return v if v and v in registry else key


def user_options(registry: Registry, specs: OptionSpecs, key: str, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The options the user set for ``key``: those other than ``key``'s own registry value or declared default."""
    if not options:
        return {}
    declared = {o.name: o for o in specs(key)}
    own = dict(registry[key].options)
    out = {}
    for name, value in options.items():
        if value is None:
            continue
        default = own.get(name, declared[name].default if name in declared else None)
        if value != default:
            out[name] = value
    return out


def carry_options(registry: Registry, specs: OptionSpecs, asked: str, target: str,
                  options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The options ``target`` runs with when a request for ``asked`` (with ``options``) is routed to it.

    Raises
    ------
    OptionError
        An option the user set that ``target`` does not declare or whose value it does not accept: the message
        names the option and what ``target`` accepts, so nothing is dropped silently.
    """
    if target == asked:
        return dict(options or {})
    mine = user_options(registry, specs, asked, options)
    theirs = {o.name: o for o in specs(target)}
    out: dict[str, Any] = {}
    for name, value in mine.items():
        opt = theirs.get(name)
        if opt is None:
            known = ", ".join(sorted(o for o in theirs if theirs[o].runtime)) or "none"
            raise OptionError(f"{asked}:{name}={value} cannot apply to {target}, which reads this text instead of "
                              f"{asked} and has no option {name!r} (its options: {known}); remove the option, or "
                              f"choose {target} by name")
        try:
            out[name] = opt.check(value, target)
        except OptionError as exc:
            raise OptionError(f"{asked}:{name}={value} cannot apply to {target}, which reads this text instead of "
                              f"{asked}: {exc}") from None
    return out


def route_pairs(registry: Registry, specs: OptionSpecs, key: str, options: Mapping[str, Any] | None,
                a: Sequence[str], b: Sequence[str]) -> dict[str, tuple[Route, list[int]]]:
    """Group aligned pairs by the model that reads them: ``{answering key: (Route, pair indices)}``.

    Raises
    ------
    OptionError
        When a user's option cannot follow a group's variant (see :func:`carry_options`).
    """
    groups: dict[str, list[int]] = {}
    route_it = bool(registry[key].variants)  # only models with variants pay for the script check
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        k = variant(registry, key, pair_language(x, y)) if route_it else key
        groups.setdefault(k, []).append(i)
    out = {}
    for k, idx in groups.items():
        opts = carry_options(registry, specs, key, k, options)
        note = None if k == key else f"scored by {k} (the {registry[k].language} variant of {key})"
        out[k] = (Route(k, opts, key, note), idx)
    return out


def route_texts(registry: Registry, specs: OptionSpecs, key: str, options: Mapping[str, Any] | None,
                texts: Sequence[str]) -> Route:
    """The one model that embeds all of ``texts`` for ``key`` (by their dominant language), with its options and a
    note when routing chose another model or the texts are mixed.

    Raises
    ------
    OptionError
        When a user's option cannot follow the variant (see :func:`carry_options`).
    """
    if not registry[key].variants:
        return Route(key, dict(options or {}), key, None)
    lang, minority = corpus_language(texts)
    use = variant(registry, key, lang)
    notes = []
    if use != key:
        notes.append(f"embedded by {use} (the {registry[use].language} variant of {key}): most texts are "
                     f"{'Chinese' if lang == 'zh' else 'English'}")
    if minority > MIXED_SHARE:
        other = "English" if lang == "zh" else "Chinese"
        notes.append(f"mixed texts ({minority:.0%} {other}): every text is embedded with {use}, so all of them share "
                     f"one vector space; the {other} ones are read by a model made for the other language")
    return Route(use, carry_options(registry, specs, key, use, options), key, "; ".join(notes) or None)


def corpus_routes(registry: Registry, specs: OptionSpecs, held: Sequence[str], asked: Sequence[str],
                  options: Mapping[str, Mapping[str, Any]] | None = None) -> tuple[dict[str, Route], list[str]]:
    """Which stored vectors of an embedded corpus answer for each asked model.

    An embedded corpus holds vectors of the models it was embedded with (``held``). An asked model is answered by
    its own vectors, else by a variant's (``sbert`` by ``sbert-zh`` in a Chinese corpus), else not at all. When no
    asked model can be answered, the corpus's own models answer (so the page shows something, and says which).

    Returns
    -------
    tuple
        ``({asked or held key: Route}, [asked keys the file cannot answer])``.
    """
    options = options or {}
    out: dict[str, Route] = {}
    missing: list[str] = []
    for key in asked:
        if key in held:
            out[key] = Route(key, dict(options.get(key) or {}), key)
            continue
        variants = registry[key].variants.values() if key in registry else ()
        alt = next((v for v in variants if v in held and v in registry), None)
        if alt is None:
            missing.append(key)
            continue
        try:
            opts = carry_options(registry, specs, key, alt, options.get(key))
        except OptionError:
            missing.append(key)
            continue
        out[key] = Route(alt, opts, key, f"the file holds {alt}'s vectors (the {registry[alt].language} variant of "
                                         f"{key})")
    if not out:
        out = {k: Route(k, {}, k, "the file's own model") for k in held if k in registry}
    return out, missing


__all__ = [
    "MIXED_SHARE",
    "Route",
    "carry_options",
    "corpus_language",
    "corpus_routes",
    "pair_language",
    "route_pairs",
    "route_texts",
    "text_language",
    "user_options",
    "variant",
]
