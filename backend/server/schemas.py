"""Request and response bodies of the HTTP API, as pydantic models: they validate input and write the OpenAPI
page (``/docs``), so every field here has a description and an example.

``/v1/embeddings`` follows OpenAI's embeddings API field for field (an OpenAI client works by changing its base
URL); ``/v1/rerank`` follows the shape Cohere, Jina and TEI use; the other routes are this project's own and
carry the warnings the dashboard shows.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MODEL_FIELD = Field(
    description="A registry key (see `GET /v1/models`), optionally with run-time options in the command line's "
    "syntax: `bert:layer=-1:pooling=cls`.",
    examples=["sbert"],
)
OPTIONS_FIELD = Field(
    None,
    description="Run-time options of the model (e.g. BERT's `layer` and `pooling`); `GET /v1/models` lists each "
    "model's options with their types and allowed values. Merged over options given in `model`.",
    examples=[{"layer": -1, "pooling": "cls"}],
)


class Strict(BaseModel):
    """Unknown fields are refused with a message naming them (a typo never passes silently)."""

    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------------------------------- /v1/embeddings
class EmbeddingsRequest(Strict):
    """OpenAI's embeddings request."""

    input: str | list[str] | list[int] | list[list[int]] = Field(
        description="One text or a list of texts (at least one). Token arrays, which OpenAI's API also takes, are "
        "refused: each model here has its own tokenizer, so send text.",
        examples=[["The chef chops onions.", "A cook is cutting onions."]],
    )
    model: str = MODEL_FIELD
    encoding_format: Literal["float", "base64"] = Field(
        "float",
        description="`float`: a list of numbers; `base64`: the float32 little-endian bytes, base64-encoded (what "
        "the `openai` Python client asks for by default and decodes for you).",
    )
    dimensions: int | None = Field(
        None, gt=0,
        description="Accepted only when equal to the model's own dimension: none of the models here was trained "
        "to be truncated (Matryoshka), so a shorter vector is refused rather than silently worse.",
    )
    user: str | None = Field(None, description="Accepted for compatibility and ignored (nothing is logged per user).")
    options: dict[str, Any] | None = OPTIONS_FIELD


class EmbeddingItem(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int = Field(description="Position of the text in `input`.")
    embedding: list[float] | str = Field(
        description="L2-normalised vector (a list of floats, or base64 float32 bytes with `encoding_format=base64`). "
        "All zeros when `valid` is false."
    )
    valid: bool = Field(True, description="False when no vector could be made (e.g. every word unknown to `w2v`).")
    warnings: list[str] = Field(default_factory=list, description="Why a vector may be poor: truncation, "
                                "unknown words, a language the model was not trained on.")


class Usage(BaseModel):
    prompt_tokens: int = Field(description="Whitespace-separated words plus CJK characters in the input (an "
                               "estimate: the models' own tokenizers differ).")
    total_tokens: int


class EmbeddingsResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingItem]
    model: str = Field(description="The model that made the vectors: the one asked for, or its language variant "
                       "when most texts are in the variant's language (sbert -> sbert-zh for Chinese input).")
    asked: str = Field("", description="The model as asked for.")
    note: str | None = Field(None, description="Why another model answered, or that the texts are mixed.")
    usage: Usage


# ------------------------------------------------------------------------------------------- /v1/embed
class EmbedRequest(Strict):
    """Sentence vectors with validity and warnings per text (the Python client's ``embed``)."""

    model: str = MODEL_FIELD
    texts: list[str] = Field(min_length=1, description="Texts to encode (empty texts give `valid: false`).",
                             examples=[["How do I reset my password?", ""]])
    options: dict[str, Any] | None = OPTIONS_FIELD


class EmbedResponse(BaseModel):
    model: str = Field(description="Key of the model that encoded.")
    dim: int = Field(description="Vector dimension.")
    vectors: str = Field(description="All vectors as base64 float32 little-endian bytes, row-major (n x dim).")
    valid: list[bool]
    warnings: list[list[str]]


# -------------------------------------------------------------------------------------- /v1/similarity
class NamedModel(Strict):
    """A model with its options under a name of your choice (two settings of one model are two results)."""

    name: str | None = Field(None, description="Names the result (default: `model`).", examples=["bert-cls"])
    model: str = MODEL_FIELD
    options: dict[str, Any] | None = OPTIONS_FIELD


class SimilarityRequest(Strict):
    """Score sentence pairs with several models (the CLI's ``pair`` and ``score`` commands)."""

    pairs: list[Annotated[list[str], Field(min_length=2, max_length=2)]] = Field(
        min_length=1, description="Pairs of texts, each a two-element list `[a, b]`.",
        examples=[[["The chef chops onions for the soup.", "A cook is cutting onions for a soup."]]],
    )
    models: list[str | NamedModel] | None = Field(
        None, description="Models, each a key with optional options (`bert:layer=-1`) or an object "
        "`{\"name\", \"model\", \"options\"}`; default: the registry's default models.",
        examples=[["sbert", "bert:pooling=cls", "esim"]],
    )
    options: dict[str, dict[str, Any]] | None = Field(
        None, description="Per-key run-time options for plain keys in `models`.", examples=[{"bert": {"layer": -1}}],
    )


class PairScore(BaseModel):
    """One model's answer for one pair: the command line's ``--json`` contract."""

    score: float | None = Field(description="Similarity; null when it cannot be defined (the warnings say why) "
                                "or the model failed (the warning starts with `error:`).")
    warnings: list[str]
    model: str = Field(description="Key of the model that actually scored (a language variant may stand in: "
                       "`esim` hands Chinese pairs to `esim-zh`).")


class ModelColumn(BaseModel):
    """One model's answers for all pairs, with its error and timing."""

    key: str
    scores: list[float | None]
    warnings: list[list[str]]
    used: list[str]
    error: str | None = Field(None, description="Set when the model failed (then every score is null).")
    seconds: float


class SimilarityResponse(BaseModel):
    results: list[dict[str, PairScore]] = Field(
        description="Per pair, model name -> answer: exactly what `python -m backend pair ... --json` prints.")
    models: dict[str, ModelColumn] = Field(description="Per model, the same answers as columns.")


# ------------------------------------------------------------------------------------------ /v1/rerank
class RerankDocument(Strict):
    text: str = Field(description="The document's text.", examples=["Reset your password in the account settings."])


class RerankRequest(Strict):
    """Order documents by relevance to a query (Cohere / Jina / TEI rerank shape)."""

    model: str = MODEL_FIELD
    query: str = Field(description="The text the documents are ranked against.",
                       examples=["How do I change my password?"])
    documents: list[str | RerankDocument] = Field(
        min_length=1, description="Texts, or objects `{\"text\": ...}` as Cohere accepts.",
        examples=[["Reset your password in the account settings.", "The match ended in a draw."]],
    )
    top_n: int | None = Field(None, ge=1, description="Return only the best `top_n` (default: all).")
    return_documents: bool = Field(False, description="Include each document's text in the results.")
    options: dict[str, Any] | None = OPTIONS_FIELD


class RerankResult(BaseModel):
    index: int = Field(description="Position of the document in `documents`.")
    relevance_score: float | None = Field(description="Higher is more relevant; null when the pair cannot be "
                                          "scored (empty text), and such documents come last.")
    warnings: list[str] = Field(default_factory=list)
    document: RerankDocument | None = None


class RerankResponse(BaseModel):
    model: str
    scored_by: Literal["pair_scorer", "encoder_cosine"] = Field(
        description="`pair_scorer`: the model read query and document together (ESIM, a cross-encoder); "
        "`encoder_cosine`: a bi-encoder's cosine of the two vectors.")
    results: list[RerankResult]


# -------------------------------------------------------------------------------------- /v1/neighbours
class NeighboursRequest(Strict):
    """Exact top-k cosine neighbours of each query in a corpus."""

    model: str = MODEL_FIELD
    queries: list[str] = Field(min_length=1, description="Texts to find neighbours for.",
                               examples=[["I forgot my password"]])
    corpus: list[str] = Field(min_length=1, description="Texts to search (empty ones are never returned).",
                              examples=[["How do I reset my password?", "The cake needs flour."]])
    k: int = Field(10, ge=1, le=1000, description="Neighbours per query.")
    options: dict[str, Any] | None = OPTIONS_FIELD


class MatchRequest(Strict):
    """Match questions against an FAQ or corpus: each model's top k per question (``python -m backend match``)."""

    queries: list[str] = Field(min_length=1, description="The questions (an empty one gets a row saying so).",
                               examples=[["花呗绑的卡能不能改一下"]])
    corpus: list[str] = Field(min_length=1, description="The FAQ or corpus (empty texts are skipped and counted).",
                              examples=[["花呗怎么更换绑定的银行卡？", "火车票怎么改签？"]])
    models: list[str] | None = Field(None, description="Encoders, each routed by the corpus's language (default: "
                                     "the registry's default encoders).", examples=[["sbert"]])
    k: int = Field(5, ge=1, le=100, description="Matches per question and model (all of a smaller corpus).")
    rerank: str | None = Field(None, description="A pair scorer that rescores each (question, match) pair.",
                               examples=["cross"])


class MatchRow(BaseModel):
    query: str
    model: str = Field(description="The model that produced the row (a routed variant names itself).")
    rank: int | None
    text: str
    score: float | None
    corpus_row: int | None
    warnings: str
    rerank_score: float | None = None
    rerank_rank: int | None = None
    reranked_by: str | None = None


class MatchResponse(BaseModel):
    models: dict[str, str] = Field(description="Each model asked for -> the model that answered for this corpus.")
    notes: list[str]
    rows: list[MatchRow]


class NeighboursResponse(BaseModel):
    model: str = Field(description="The model that embedded queries and corpus (routed by their dominant language).")
    note: str | None = None
    indices: list[list[int]] = Field(description="Per query, corpus positions best first; -1 pads when the corpus "
                                     "has fewer than k usable texts.")
    scores: list[list[float | None]] = Field(description="Cosine per neighbour; null where `indices` is -1.")
    warnings: list[list[str]] = Field(description="Per query.")
    corpus_warnings: list[list[str]]


# ----------------------------------------------------------------------------------------- /v1/project
class ProjectRequest(Strict):
    """2-D coordinates of texts (UMAP with the cosine metric, or PCA)."""

    model: str = MODEL_FIELD
    texts: list[str] = Field(min_length=3, description="At least three texts with a vector.")
    method: Literal["umap", "pca"] = Field("umap", description="`umap` (cosine metric; keeps local "
                                           "neighbourhoods) or `pca` (linear, fast).")
    seed: int = Field(42, description="UMAP's random_state: the same seed gives the same map.")
    n_neighbors: int = Field(15, ge=2, le=200, description="UMAP's neighbourhood size: larger values show more "
                             "global structure.")
    min_dist: float = Field(0.1, ge=0.0, le=1.0, description="UMAP's minimum distance between points in the map.")
    options: dict[str, Any] | None = OPTIONS_FIELD
    fit_limit: int | None = Field(None, ge=3, description="Above this many points UMAP is fitted on a seeded sample "
                                  "of `fit_sample` and places the rest with `transform` (default 20,000).")
    fit_sample: int | None = Field(None, ge=3, description="The size of that sample (default 10,000).")


class ProjectionInfoBody(BaseModel):
    """What the projection did (``backend.lab.projection.ProjectionInfo``)."""

    method: Literal["umap", "pca"] = Field(description="The method used: UMAP falls back to PCA on tiny inputs.")
    n: int = Field(description="Points placed (texts with a vector).")
    fitted_on: int = Field(description="Points the map was fitted on (`n` unless sampled).")
    seed: int
    seconds: float = Field(description="Time on the server.")
    cached: bool = Field(description="Served from the server's cache.")
    without_vector: int = Field(description="Texts left out (their coordinates are null).")
    note: str = Field(description="Why the method differs from the one asked for, if it does.")


class ProjectResponse(BaseModel):
    model: str = Field(description="The model that embedded the texts (routed by their dominant language).")
    note: str | None = None
    coords: list[list[float | None]] = Field(description="Per text `[x, y]`; `[null, null]` for texts without a "
                                             "vector.")
    info: ProjectionInfoBody


# ------------------------------------------------------------------------------------------ /v1/config
class ConfigRequest(Strict):
    """A model's configuration, computed without loading its weights."""

    model: str = MODEL_FIELD
    options: dict[str, Any] | None = OPTIONS_FIELD


class ConfigResponse(BaseModel):
    """Everything that makes a model's numbers what they are (``backend.results.ModelConfig``): vectors stored
    with another `config_id` were made by another configuration and are not comparable."""

    key: str = Field(description="The registry key.")
    family: str
    source: str = Field(description="Where the weights come from (`package:...`, `path:...`).")
    config_id: str = Field(description="Equal ids, equal vectors: a hash of the weights' source and every option.")
    options: dict[str, Any] = Field(description="Every option's value, defaults included.")


# ------------------------------------------------------------------------------------------- /v1/align
class AlignRequest(Strict):
    """A pair scorer's word alignment of two texts (ESIM's soft attention), for a heatmap."""

    model: str = Field(description="A registry key (no options: the alignment is the registered model's).",
                       examples=["esim"])
    a: str = Field(description="First text (its tokens are the matrix's rows).", examples=["A man plays guitar."])
    b: str = Field(description="Second text (the columns).", examples=["Someone is playing a guitar."])


class Alignment(BaseModel):
    tokens_a: list[str] = Field(description="Tokens of `a` after cleaning and truncation.")
    tokens_b: list[str]
    matrix: list[list[float | None]] = Field(description="len(tokens_a) x len(tokens_b): row i is token i of `a`'s "
                                             "attention over `b` (sums to 1); empty when a text has no tokens.")
    score: float | None = Field(description="The model's score of the pair; null when undefined.")
    warnings: list[str]


class AlignResponse(BaseModel):
    model: str
    alignment: Alignment | None = Field(description="Null when the model has no alignment to show (an encoder, a "
                                        "cross-encoder): the client's `align` returns None then.")


# ------------------------------------------------------------------------------------------- /v1/probe
class ProbeRequest(Strict):
    """The BERT layer probe: Spearman x 100 of the cosine for every hidden layer x pooling on labelled pairs."""

    model: str = Field(description="A BERT-family registry key (family `bert`).", examples=["bert"])
    a: list[str] = Field(min_length=2, description="First texts of the pairs.",
                         examples=[["A man plays guitar.", "A cat sleeps.", "Two dogs run."]])
    b: list[str] = Field(min_length=2, description="Second texts, aligned with `a`.",
                         examples=[["Someone plays a guitar.", "A dog barks.", "Dogs are running."]])
    labels: list[float | None] = Field(min_length=2, description="Gold label per pair; null: no label (left out).",
                                       examples=[[4.8, 0.4, 3.9]])
    kind: Literal["graded", "binary"] = Field("graded", description="Graded scores, or binary 0/1 labels.")
    label_range: tuple[float, float] | None = Field(None, description="`[lo, hi]` of the labels (default: their "
                                                    "minimum and maximum).")
    whiten: bool = Field(False, description="Whiten each layer x pooling, fitted on these sentences themselves "
                         "(optimistic: it sees the test sentences, not their labels).")
    whiten_dim: int | None = Field(None, ge=1, description="Keep this many whitened dimensions (default: all).")


class ProbeResponse(BaseModel):
    model: str
    layers: list[int] = Field(description="Hidden-state indices: 0 is the embedding output, then one per layer.")
    poolings: list[str]
    spearman: list[list[float | None]] = Field(description="`spearman[i][j]`: layer `layers[i]` with pooling "
                                               "`poolings[j]`, Spearman x 100; null where undefined.")
    first_last_avg: float | None = Field(description="The mean of the first and last layers' masked means.")
    whitened: bool
    n: int = Field(description="Pairs used.")
    skipped: int = Field(description="Pairs left out (an empty text or no label).")
    notes: list[str]
    mix_weights: list[float] | None = Field(None, description="The learnt ELMo-style softmax weights, one per hidden "
                                            "state (embedding output first); null when no mix was learnt.")
    mix_spearman: float | None = Field(None, description="The mix's Spearman x 100 on the held-out part.")
    mix_baseline: float | None = Field(None, description="The best single layer's Spearman on the same part.")
    mix_note: str = ""
    mix_pooling: str = "mean"


# ------------------------------------------------------------------------------------------- /v1/check
class CheckRequest(Strict):
    """Validate a model and its options without doing any work (loads no weights)."""

    model: str = MODEL_FIELD
    options: dict[str, Any] | None = OPTIONS_FIELD


class CheckResponse(BaseModel):
    model: str = Field(description="The registry key.")
    options: dict[str, Any] = Field(description="The options, converted to their declared types.")


# ------------------------------------------------------------------------------------------ /v1/models
class OptionInfo(BaseModel):
    """A declared option (backend/options.py ``Option``)."""

    name: str
    type: Literal["int", "float", "bool", "str"]
    default: Any
    why: str
    choices: list[Any] | None = None
    low: float | None = None
    high: float | None = None
    runtime: bool = Field(description="True when a request may change it; false when it is set at load time "
                          "(in the registry).")
    label: str = ""
    label_zh: str = Field("", description="The widget title in the Chinese interface (empty: the English shows).")
    why_zh: str = Field("", description="The help text in the Chinese interface (empty: the English shows).")


class ModelInfo(BaseModel):
    """A registry entry, in OpenAI's model-list shape plus this project's facts."""

    id: str = Field(description="The registry key.")
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "simdash"
    family: str
    label: str
    roles: list[str] = Field(description="`encoder` (gives sentence vectors), `pair_scorer` (reads both texts of a "
                             "pair together), or both.")
    language: str = Field(description="What the weights were trained on: en, zh or multi.")
    licence: str
    default: bool
    note: str
    source: str
    variants: dict[str, str] = Field(description="Language -> the key that scores texts of that language.")
    options: dict[str, Any] = Field(description="The registry's option values.")
    option_specs: list[OptionInfo]
    research_only: bool = Field(False, description="The licence forbids commercial use.")
    stands_in_for: str = Field("", description="What the model is often taken for but is not (e.g. raw BERT).")
    facts: dict[str, Any] = Field(default_factory=dict, description="More facts for the model card.")
    state: Literal["loaded", "loading", "failed", "not loaded"]
    error: str | None = Field(None, description="Why the last load failed.")


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelInfo]
    errors: dict[str, str] = Field(default_factory=dict, description="Registry entries that could not be read.")


# ------------------------------------------------------------------------------------------------ /health
class Health(BaseModel):
    status: Literal["ok"] = "ok"
    version: str
    device: str = Field(description="Where models run: cpu, cuda, cuda:1, mps.")
    loaded: list[str]
    loading: list[str]
    failed: dict[str, str] = Field(description="Model -> why its last load failed.")
    batching: dict[str, Any] = Field(description="Dynamic batching settings (`wait_ms` 0 = off).")
    cache: dict[str, Any] = Field(description="Whether the persistent vector cache is on, and its entries.")
    limits: dict[str, int | float] = Field(description="Texts per request, characters per text, body bytes, body "
                                           "and header timeouts (seconds), requests in flight per model.")
    in_flight: dict[str, int] = Field(default_factory=dict, description="Model -> requests in flight now (absent: "
                                      "none); past `limits.max_queue` a request gets a 429.")


class ErrorBody(BaseModel):
    message: str = Field(description="What went wrong, for a person.")
    type: str = Field(description="invalid_request, unknown_model, invalid_option, wrong_role, too_large, "
                      "timeout, overloaded, model_unavailable, unauthorized, not_found, server_error.")
    param: str | None = Field(None, description="The offending field, where there is one.")
    code: int = Field(description="The HTTP status.")


class ErrorResponse(BaseModel):
    """Every error, in OpenAI's shape (so OpenAI clients show the message)."""

    error: ErrorBody
