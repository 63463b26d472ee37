"""Projection: the corpus mapped to 2-D by each model (UMAP or PCA), side by side, with your query marked."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from ui import state
from ui.charts import label_color_map, projection_scatter
from ui.sidebar import current_settings
from ui.widgets import (
    LazyProgress,
    bert_note_ui,
    corpus_ui,
    download_ui,
    ensure_loaded_ui,
    options_json,
    short_error,
)

DEFAULT_QUERY = "My flight was cancelled, can I get my money back?"
#: UMAP on more points takes minutes on a CPU; a seeded sample keeps the page interactive.
MAX_POINTS = 5000


def projection_ui() -> None:
    """The Projection page."""
    settings = current_settings()
    st.title("Projection")
    st.caption("Where each model puts the corpus sentences: nearby points are texts the model finds similar.")
    corpus = corpus_ui()
    if corpus is None:
        st.stop()
    c1, c2, c3, c4 = st.columns([2, 1, 1, 2])
    method = c1.segmented_control("Method", ["UMAP", "PCA"], default="UMAP", key="proj_method", bind="query-params",
                                  required=True,
                                  help="UMAP (cosine) keeps neighbourhoods; PCA keeps global directions and is instant.")
    seed = int(c2.number_input("Seed", 0, 2**31 - 1, 42, key="proj_seed", bind="query-params",
                               help="UMAP and KMeans use it: the same seed gives the same picture."))
    colour_opts = ["label", "cluster"] if corpus.labels else ["cluster"]
    colour = c3.radio("Colour by", colour_opts, key="proj_colour", bind="query-params",
                      help=f"label: the corpus's {corpus.label_name or 'label'} column; cluster: KMeans in each model's own "
                      "embedding space (so clusters differ between models).")
    n_clusters = c3.slider("KMeans clusters", 2, 20, 12, key="proj_k", bind="query-params") if colour == "cluster" else 0
    method = method.lower()
    query = c4.text_input("Query (marked ★ in every plot)", DEFAULT_QUERY, key="proj_query", bind="query-params").strip()
    if not settings.keys:
        st.info("Choose at least one model in the sidebar.")
        st.stop()
    texts, labels = corpus.texts, corpus.labels
    if len(texts) > MAX_POINTS:
        pick = np.sort(np.random.default_rng(seed).choice(len(texts), MAX_POINTS, replace=False))
        texts = [texts[i] for i in pick]
        labels = [labels[i] for i in pick] if labels else None
        st.caption(f"Showing a random sample of {MAX_POINTS:,} of {len(corpus.texts):,} rows (seed {seed}).")
    ensure_loaded_ui(settings.keys)
    # The query is embedded and projected together with the corpus, so it lands on the same map.
    all_texts = tuple([*texts, query]) if query else tuple(texts)
    coords, groups, errors = {}, {}, {}
    bar = LazyProgress("Projecting…")
    n = len(settings.keys)
    for i, key in enumerate(settings.keys):
        opts = settings.options.get(key)
        msg = f"{method.upper()} of {len(all_texts)} texts with {key} ({i + 1}/{n})…"
        try:
            bar(i / n, msg)
            coords[key] = state.projection(key, all_texts, method, seed, options_json(opts), _options=opts,
                                           _progress=lambda d, t, i=i, msg=msg: bar((i + 0.5 * d / max(t, 1)) / n, msg))
            if colour == "cluster":
                groups[key] = state.clusters(key, tuple(texts), n_clusters, seed, options_json(opts), _options=opts)
        except Exception as exc:
            errors[key] = str(exc).strip("'\"")
    bar.done()
    st.caption(f"{method.upper()}, seed {seed}" + (", n_neighbors 15, min_dist 0.1, cosine metric" if method == "umap" else "")
               + f" · {len(texts):,} texts from the {corpus.name}. Same seed, same picture.")
    shared = label_color_map(labels if colour == "label" and labels else [g for v in groups.values() for g in v])
    grid = st.columns(2)
    rows = []
    for j, key in enumerate(settings.keys):
        with grid[j % 2]:
            if key in errors:
                st.error(f"{settings.labels.get(key, key)} ({key}) failed: {short_error(errors[key])}")
                continue
            xy = coords[key]
            g = labels if colour == "label" and labels else groups.get(key, ["" for _ in texts])
            fig = projection_scatter(xy[: len(texts)], texts, g, shared, settings.labels.get(key, key), key,
                                     corpus.label_name if colour == "label" else "cluster",
                                     query or None, xy[len(texts)] if query else None, method.upper())
            st.plotly_chart(fig, key=f"proj_plot_{key}")
            rows.append(pd.DataFrame({"model": key, "x": xy[: len(texts), 0], "y": xy[: len(texts), 1],
                                      "text": texts, "group": g}))
    bert_note_ui(settings.keys)
    if rows:
        download_ui(pd.concat(rows), f"projection_{method}_seed{seed}.csv", key="proj_download", label="Download coordinates")


projection_ui()
