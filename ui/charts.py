"""Plotly figures for the dashboard, built from plain data (no streamlit import).

Every figure has a title and axis labels, and uses :func:`ui.theme.model_color` for models, so a model is
the same colour on every page. Text goes through ``tr`` (the page passes :func:`ui.i18n.t`), so figures read in
the interface language. Backgrounds and fonts are left to the caller's template (Streamlit's theme
applies its light or dark template), so the figures work in both themes.
"""

from __future__ import annotations

import html
import math
import textwrap
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ui.theme import LABEL_COLORS, QUERY_COLOR, model_color, model_pattern

Translate = Callable[..., str]


def _same(text: str, **values: object) -> str:
    """The default ``tr``: English, with ``{fields}`` filled (pages pass :func:`ui.i18n.t`)."""
    return text.format(**values) if values else text


def wrap(text: str, width: int = 60, max_lines: int = 6) -> str:
    """Wrap ``text`` with ``<br>`` for plotly hover labels (long sentences would run off the plot).

    The text is HTML-escaped first: plotly renders tags such as ``<a href>`` in labels, and a user's text must not
    become a link.
    """
    lines = textwrap.wrap(html.escape(str(text)), width) or [""]
    if len(lines) > max_lines:
        lines = [*lines[: max_lines - 1], lines[max_lines - 1] + " …"]
    return "<br>".join(lines)


def short(text: str, width: int = 28) -> str:
    """``text`` cut to ``width`` characters with an ellipsis (axis tick labels)."""
    text = str(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def score_bars(frame: pd.DataFrame, keys: Sequence[str], labels: Mapping[str, str], tr: Translate = _same) -> go.Figure:
    """Grouped bars: one group per pair, one bar per model (in the model's colour).

    Parameters
    ----------
    frame : pandas.DataFrame
        :func:`ui.tables.scores_frame` output (``pair, sentence_a, sentence_b, score_<key>``).
    keys : sequence of str
        Models in legend order.
    labels : mapping
        Key -> display name (the name of the model that answered, where a language variant did).

    A pair scored by a language variant names it in its hover text (``→ sbert-zh``).
    """
    fig = go.Figure()
    x = [f"#{p}" for p in frame["pair"]]
    hover = [f"{wrap(a, 50)}<br>vs<br>{wrap(b, 50)}" for a, b in zip(frame["sentence_a"], frame["sentence_b"], strict=True)]
    for key in keys:
        col = f"score_{key}"
        if col not in frame:
            continue
        y = pd.to_numeric(frame[col], errors="coerce")
        used = frame.get(f"scored_by_{key}", pd.Series([key] * len(frame)))
        custom = [h + (f"<br>→ {html.escape(str(u))}" if u and u != key else "") for h, u in zip(hover, used, strict=True)]
        fig.add_bar(
            x=x, y=y, name=labels.get(key, key), marker_color=model_color(key), customdata=custom,
            marker_pattern_shape=model_pattern(key),
            hovertemplate="<b>%{fullData.name}</b>: %{y:.3f}<br>%{customdata}<extra></extra>",
            text=[(tr("n/a") if np.isnan(v) else f"{v:.2f}") for v in y], textposition="outside", cliponaxis=False,
        )
    values = pd.concat([pd.to_numeric(frame[f"score_{k}"], errors="coerce") for k in keys if f"score_{k}" in frame] or [pd.Series(dtype=float)])
    low = float(min(0.0, np.nanmin(values))) if values.notna().any() else 0.0
    # The legend goes under the plot: above it, five or more models' names ran into the title.
    fig.update_layout(
        title=tr("Similarity per pair and model"), barmode="group", bargap=0.25,
        xaxis_title=tr("pair (hover for the sentences)"),
        yaxis_title=tr("similarity (cosine; pair scorers: their own score)"),
        yaxis_range=[low - 0.05 if low < 0 else 0, 1.12], margin={"t": 50, "b": 40},
        legend={"orientation": "h", "yanchor": "top", "y": -0.18, "x": 0},
    )
    return fig


def alignment_heatmap(tokens_a: Sequence[str], tokens_b: Sequence[str], matrix: np.ndarray, title: str,
                      tr: Translate = _same) -> go.Figure:
    """ESIM's soft alignment: rows are tokens of sentence A, columns tokens of sentence B.

    Token labels are made unique with a position suffix only where a token repeats (plotly merges equal
    category labels).
    """
    def uniq(tokens: Sequence[str]) -> list[str]:
        seen: dict[str, int] = {}
        out = []
        for t in tokens:
            seen[t] = seen.get(t, 0) + 1
            out.append(t if seen[t] == 1 else f"{t} ({seen[t]})")
        return out

    m = np.asarray(matrix, dtype=float)
    fig = go.Figure(go.Heatmap(
        z=m, x=uniq(tokens_b), y=uniq(tokens_a), colorscale="Blues", zmin=0, zmax=float(np.nanmax(m)) if m.size else 1,
        colorbar={"title": tr("attention")}, hovertemplate="A: %{y}<br>B: %{x}<br>%{z:.3f}<extra></extra>",
    ))
    fig.update_layout(title=title, xaxis_title=tr("sentence B tokens"), yaxis_title=tr("sentence A tokens"),
                      yaxis_autorange="reversed", margin={"t": 60})
    return fig


def overlap_heatmap(matrix: pd.DataFrame, labels: Mapping[str, str], k: int, tr: Translate = _same) -> go.Figure:
    """Mean Jaccard overlap of the models' top-``k`` sets (1 = the same neighbours)."""
    names = [labels.get(c, c) for c in matrix.columns]
    z = matrix.to_numpy(dtype=float)
    fig = go.Figure(go.Heatmap(
        z=z, x=names, y=names, zmin=0, zmax=1, colorscale="Viridis", colorbar={"title": "Jaccard"},
        text=np.vectorize(lambda v: f"{v:.2f}")(z), texttemplate="%{text}",
        hovertemplate="%{y} vs %{x}<br>Jaccard %{z:.2f}<extra></extra>",
    ))
    fig.update_layout(title=tr("Overlap of top-{k} neighbours between models (mean Jaccard over queries)", k=k),
                      xaxis_title=tr("model"), yaxis_title=tr("model"), yaxis_autorange="reversed", margin={"t": 60})
    return fig


def label_color_map(groups: Sequence[str], no_vector: str = "no vector") -> dict[str, str]:
    """A colour per label/cluster name, the same in every model's plot (sorted, so stable); grey for the texts
    without a vector (``no_vector``: the name the page gave them, in the interface language) and for no label."""
    names = sorted({str(g) for g in groups})
    return {g: ("#9E9E9E" if g in (no_vector, "") else LABEL_COLORS[i % len(LABEL_COLORS)]) for i, g in enumerate(names)}


#: above this many points a projection is drawn with WebGL (go.Scattergl).
WEBGL_POINTS = 5_000


def projection_scatter(
    coords: np.ndarray, texts: Sequence[str], groups: Sequence[str], colors: Mapping[str, str], title: str,
    key: str, group_title: str = "label", query: str | None = None, query_xy: np.ndarray | None = None,
    method: str = "UMAP", tr: Translate = _same,
) -> go.Figure:
    """One model's 2-D map of the corpus: a point per text coloured by ``groups``, the query as a star.

    Parameters
    ----------
    coords : np.ndarray, shape (n, 2)
        NaN rows (no vector) are left out.
    texts, groups : sequence of str
        Hover text and colour group per row.
    colors : mapping
        Group -> colour (:func:`label_color_map`, shared by all models' plots).
    key : str
        The model (its colour frames the title).
    query_xy : np.ndarray, shape (2,), optional
        Where the query landed.
    """
    fig = go.Figure()
    coords = np.asarray(coords, dtype=float)
    ok = np.isfinite(coords).all(axis=1)
    big = int(ok.sum()) > WEBGL_POINTS
    g = np.asarray([str(x) for x in groups], dtype=object)
    # Many points: WebGL draws them (SVG stalls the browser past a few thousand), smaller markers, and shorter
    # hover text so the figure sent to the browser stays a few MB.
    t = np.asarray([wrap(x, 60, 3) if big else wrap(x) for x in texts], dtype=object)
    trace = go.Scattergl if big else go.Scatter
    for name in sorted(set(g[ok].tolist())):
        sel = ok & (g == name)
        fig.add_trace(trace(
            x=coords[sel, 0], y=coords[sel, 1], mode="markers", name=name, legendgroup=name,
            marker={"size": 3 if big else 7, "color": colors.get(name, "#9E9E9E"), "opacity": 0.6 if big else 0.85},
            customdata=t[sel], hovertemplate=f"<b>{html.escape(name)}</b><br>%{{customdata}}<extra></extra>",
        ))
    if query_xy is not None and np.isfinite(query_xy).all():
        fig.add_scatter(
            x=[query_xy[0]], y=[query_xy[1]], mode="markers+text", name=tr("query"), text=[tr("query")],
            textposition="top center", marker={"symbol": "star", "size": 22, "color": QUERY_COLOR,
                                               "line": {"width": 2, "color": "#333333"}},
            customdata=[wrap(query or "")], hovertemplate=f"<b>{tr('query')}</b><br>%{{customdata}}<extra></extra>",
        )
    fig.update_layout(
        title={"text": f"<span style='color:{model_color(key)}'>■</span> {title}"},
        xaxis_title=f"{method} 1", yaxis_title=f"{method} 2", legend_title_text=group_title,
        margin={"t": 60, "l": 10, "r": 10, "b": 10}, height=540, legend_font_size=11,
    )
    # Projection axes have no units: hide the tick numbers rather than invite reading them.
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    return fig


def metric_bars(metrics: pd.DataFrame, labels: Mapping[str, str], tr: Translate = _same) -> go.Figure:
    """One bar per model for the batch page's agreement with the gold column."""
    metric = str(metrics["metric"].iloc[0]) if len(metrics) else "metric"
    fig = go.Figure(go.Bar(
        x=[labels.get(k, k) for k in metrics["model"]], y=metrics["value"],
        marker_color=[model_color(k) for k in metrics["model"]],
        text=[(tr("n/a") if pd.isna(v) else f"{v:.3f}") for v in metrics["value"]], textposition="outside",
        hovertemplate="%{x}: %{y:.3f}<extra></extra>",
    ))
    fig.update_layout(title=tr("{metric} against the gold column, per model", metric=metric), xaxis_title=tr("model"),
                      yaxis_title=metric, yaxis_range=[min(0.0, float(np.nanmin(metrics["value"])) if metrics["value"].notna().any() else 0.0), 1.05],
                      margin={"t": 60})
    return fig


# ------------------------------------------------------------------------------------- evaluation lab
#: height of the Evaluation lab's charts: two fit on a laptop screen with the tab's controls above them.
EVAL_HEIGHT = 380


def score_vs_gold(scores: Mapping[str, np.ndarray], gold: np.ndarray, tr: Translate = _same) -> go.Figure:
    """One panel per model: each pair's score against its gold label, and the binned trend line.

    Parameters
    ----------
    scores : mapping
        Model key -> scores, shape (n,) (NaN = no score); panels in this order.
    gold : np.ndarray, shape (n,)
        Gold labels of the same pairs.

    The trend is :func:`backend.lab.evaluation.binned_trend` (mean gold per score decile), in the model's colour.
    """
    from plotly.subplots import make_subplots

    from backend.lab.evaluation import binned_trend

    names = list(scores)
    fig = make_subplots(rows=1, cols=max(len(names), 1), subplot_titles=names, shared_yaxes=True)
    y = np.asarray(gold, dtype=float)
    for i, k in enumerate(names, start=1):
        s = np.asarray(scores[k], dtype=float)
        fig.add_trace(go.Scattergl(x=s, y=y, mode="markers", name=k, showlegend=False,
                                   marker={"color": model_color(k), "size": 4, "opacity": 0.45},
                                   hovertemplate="score %{x:.3f}<br>gold %{y:g}<extra>" + k + "</extra>"), 1, i)
        tx, ty = binned_trend(s, y)
        fig.add_trace(go.Scatter(x=tx, y=ty, mode="lines+markers", name=f"{k} trend", showlegend=False,
                                 line={"color": model_color(k), "width": 3}), 1, i)
        fig.update_xaxes(title_text=tr("model score"), row=1, col=i)
    fig.update_yaxes(title_text=tr("gold label"), row=1, col=1)
    fig.update_layout(title=tr("Score vs gold (line: mean gold per score decile)"), height=EVAL_HEIGHT)
    return fig


def score_distributions(scores: Mapping[str, np.ndarray], gold: np.ndarray, binary: bool,
                        tr: Translate = _same) -> go.Figure:
    """Box plots of each model's scores per gold label (graded labels rounded down to whole numbers).

    The gold categories are ordered by value (plotly would order them by first appearance in the data).
    """
    g = np.asarray(gold, dtype=float)
    y = g if binary else np.floor(g)
    fig = go.Figure()
    for k, s in scores.items():
        s = np.asarray(s, dtype=float)
        ok = np.isfinite(s) & np.isfinite(y)
        fig.add_trace(go.Box(x=[f"{v:g}" for v in y[ok]], y=s[ok], name=k, marker_color=model_color(k), boxmean=True))
    order = [f"{v:g}" for v in np.unique(y[np.isfinite(y)])]
    fig.update_layout(boxmode="group", title=tr("Score distribution per gold label"), height=EVAL_HEIGHT,
                      xaxis_title=tr("gold label") if binary else tr("gold label (rounded down)"),
                      yaxis_title=tr("model score"),
                      xaxis={"categoryorder": "array", "categoryarray": order})
    return fig


def roc_pr(curves: Mapping[str, Mapping[str, np.ndarray] | None], auc: Mapping[str, float | None],
           average_precision: Mapping[str, float | None], tr: Translate = _same) -> tuple[go.Figure, go.Figure] | None:
    """ROC and precision-recall curves, one line per model in its colour; None when no model has a curve.

    Parameters
    ----------
    curves : mapping
        Model key -> :func:`backend.lab.evaluation.roc_pr_curves` output (``fpr, tpr, precision, recall``), or
        None where a class is missing.
    auc, average_precision : mapping
        Model key -> the metric, shown in the legend.
    """
    def fmt(x: float | None) -> str:
        return "–" if x is None or not np.isfinite(x) else f"{x:.3f}"

    drawn = [k for k, c in curves.items() if c is not None]
    if not drawn:
        return None
    roc, pr = go.Figure(), go.Figure()
    for k in drawn:
        c = curves[k]
        roc.add_trace(go.Scatter(x=c["fpr"], y=c["tpr"], name=f"{k} (AUC {fmt(auc.get(k))})", line={"color": model_color(k)}))
        pr.add_trace(go.Scatter(x=c["recall"], y=c["precision"], name=f"{k} (AP {fmt(average_precision.get(k))})",
                                line={"color": model_color(k)}))
    roc.add_trace(go.Scatter(x=[0, 1], y=[0, 1], name=tr("chance"), line={"dash": "dot", "color": "gray"}))
    roc.update_layout(title="ROC", xaxis_title=tr("false positive rate"), yaxis_title=tr("true positive rate"),
                      height=EVAL_HEIGHT)
    pr.update_layout(title=tr("Precision-recall"), xaxis_title=tr("recall"), yaxis_title=tr("precision"),
                     height=EVAL_HEIGHT)
    return roc, pr


def calibration_curve(key: str, grid: np.ndarray, p_similar: np.ndarray, method: str,
                      background: np.ndarray | None = None, tr: Translate = _same) -> go.Figure:
    """P(similar) as a function of the score (model colour), over the histogram of random pairs' scores.

    Parameters
    ----------
    grid, p_similar : np.ndarray, shape (m,)
        ``Calibrator.curve`` output.
    background : np.ndarray, optional
        Scores of random pairs (what "unrelated" looks like), on a second y axis.
    """
    from plotly.subplots import make_subplots

    fig = make_subplots(specs=[[{"secondary_y": True}]])
    if background is not None:
        fig.add_trace(go.Histogram(x=background, name=tr("random pairs"), opacity=0.35, marker_color="gray",
                                   histnorm="probability"), secondary_y=True)
    fig.add_trace(go.Scatter(x=grid, y=p_similar, name=f"P(similar), {method}",
                             line={"color": model_color(key), "width": 3}), secondary_y=False)
    fig.update_layout(title=tr("{key}: P(similar) and the background of random pairs", key=key), height=EVAL_HEIGHT,
                      xaxis_title=tr("model score"))
    fig.update_yaxes(title_text="P(similar)", range=[0, 1], secondary_y=False)
    fig.update_yaxes(title_text=tr("share of random pairs"), secondary_y=True)
    return fig


def layer_label(index: int, n_states: int, tr: Translate = _same) -> str:
    """A hidden state named both ways: its negative index (as the sidebar) and what it is (layer i / embeddings)."""
    neg = index - n_states
    return tr("{neg} · embeddings", neg=neg) if index == 0 else tr("{neg} · layer {i}", neg=neg, i=index)


def probe_heatmap(frame: pd.DataFrame, model: str, n: int, whitened: bool, tr: Translate = _same) -> go.Figure:
    """Spearman x 100 per hidden state (rows, top = last layer) x pooling (columns), cells labelled.

    Rows are categories named both ways (``-2 · layer 5``): a numeric axis would drop the embedding row and shift
    the others (plotly reads "0 (embeddings)" beside numbers as a number axis).

    Parameters
    ----------
    frame : pandas.DataFrame
        :meth:`backend.lab.probe.ProbeResult.frame` (index ``layer``, 0 = embedding output; one column per pooling;
        NaN = undefined).
    """
    z = frame.to_numpy(dtype=float)
    n_states = len(frame.index)
    rows = [layer_label(int(i), n_states, tr) for i in frame.index]
    fig = go.Figure(go.Heatmap(
        z=z, x=list(frame.columns), y=rows, colorscale="Viridis", colorbar={"title": "Spearman"},
        text=[[("–" if np.isnan(v) else f"{v:.1f}") for v in row] for row in z], texttemplate="%{text}",
        hovertemplate="%{y}, %{x}: %{z:.1f}<extra></extra>",
    ))
    title = tr("{model}: Spearman ×100 per layer × pooling ({n} pairs)", model=model, n=f"{n:,}")
    if whitened:
        title += " · " + tr("whitened")
    fig.update_layout(title=title, yaxis_title=tr("hidden state (index · layer)"), xaxis_title=tr("pooling"),
                      height=80 + 44 * n_states, yaxis={"type": "category", "categoryorder": "array",
                                                        "categoryarray": rows})
    return fig


def training_curves(history: Sequence[Mapping[str, float]], metrics: Sequence[str], key: str, title: str,
                    yaxis_title: str, tr: Translate = _same) -> go.Figure:
    """Metrics per epoch of a model being trained, in the colour of its family (``w2v``, ``esim``).

    Parameters
    ----------
    history : sequence of dict
        One dict per epoch with ``epoch`` and the metrics (``BackgroundJob``/trainer history).
    metrics : sequence of str
        Which entries to draw, one line each (told apart by dash style, all in the model's colour).
    """
    dashes = ("solid", "dash", "dot", "dashdot", "longdash")
    epochs = [h.get("epoch") for h in history]
    fig = go.Figure()
    for i, m in enumerate(metrics):
        fig.add_trace(go.Scatter(x=epochs, y=[h.get(m) for h in history], mode="lines+markers", name=m,
                                 line={"color": model_color(key), "dash": dashes[i % len(dashes)]}))
    fig.update_layout(title=title, xaxis_title=tr("epoch"), yaxis_title=yaxis_title, height=260, margin={"t": 50, "b": 40},
                      showlegend=len(metrics) > 1)
    fig.update_xaxes(tick0=1, dtick=max(1, math.ceil(len(epochs) / 10)))  # whole epochs, at most ~10 ticks
    return fig
