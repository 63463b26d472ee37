"""Projection: the corpus mapped to 2-D by each model (UMAP or PCA), side by side, with your query marked."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from ui import state
from ui.charts import label_color_map, projection_scatter
from ui.escape import plain
from ui.frame import page_settings
from ui.i18n import t, tw, url_choice
from ui.tables import answered_label, cluster_names
from ui.widgets import (
    Corpus,
    Progress,
    corpus_ui,
    download_ui,
    embedded_routes_ui,
    load_models_ui,
    models_ui,
    short_error,
)

DEFAULT_QUERY = "My flight was cancelled, can I get my money back?"
#: UMAP on more points takes minutes on a CPU; a seeded sample keeps the page interactive.
MAX_POINTS = 5000


def controls_ui(has_labels: bool) -> tuple[str, int, str, int, str]:
    """Method, seed, colouring, cluster count and query (all kept in the URL)."""
    c1, c2, c3, c4 = st.columns([2, 1, 1, 2])
    method = c1.segmented_control(t("Method"), ["UMAP", "PCA"], default="UMAP", key="proj_method", bind="query-params",
                                  required=True, help=t("UMAP (cosine) keeps neighbourhoods; PCA keeps global "
                                                        "directions and is instant."))
    seed = int(c2.number_input(t("Seed"), 0, 2**31 - 1, 42, key="proj_seed", bind="query-params",
                               help=t("UMAP and k-means use it: the same seed gives the same picture.")))
    colour = url_choice(c3.radio, t("Colour by"), ["label", "cluster"] if has_labels else ["cluster"], "proj_colour",
                        t, help=t("label: the corpus's label column; cluster: k-means in each model's own vector "
                                  "space (so clusters differ between models)."))
    n_clusters = c3.slider(t("k-means clusters"), 2, 20, 12, key="proj_k", bind="query-params") if colour == "cluster" else 0
    query = c4.text_input(t("Query (marked ★ in every plot)"), DEFAULT_QUERY, key="proj_query", bind="query-params")
    return method.lower(), seed, colour, n_clusters, query.strip()


def texts_ui(corpus: Corpus, keys: list[str], method: str, seed: int, colour: str, n_clusters: int, query: str,
             options: dict) -> tuple:
    """Map texts (embedded here, with the query so it lands on the same map); a seeded sample above MAX_POINTS."""
    be = state.backend()
    texts, labels = corpus.texts, corpus.labels
    if len(texts) > MAX_POINTS:
        pick = np.sort(np.random.default_rng(seed).choice(len(texts), MAX_POINTS, replace=False))
        texts = [texts[i] for i in pick]
        labels = [labels[i] for i in pick] if labels else None
        st.caption(t("Showing a random sample of {n} of {total} rows (seed {seed}).", n=f"{MAX_POINTS:,}",
                     total=f"{len(corpus.texts):,}", seed=seed))
    errors = load_models_ui(keys)
    # The query is embedded and projected together with the corpus, so it lands on the same map.
    all_texts = [*texts, query] if query else list(texts)
    coords, groups, notes, used = {}, {}, {}, {}
    bar = Progress(t("Projecting…"))
    for i, key in enumerate(k for k in keys if k not in errors):
        opts = options.get(key)
        try:
            route = be.route_texts(key, all_texts, opts)
            used[key], notes[key], opts = route.key, route.note, route.options
            coords[key] = be.project(used[key], all_texts, method, seed, options=opts, progress=lambda d, n, i=i, key=key: bar(
                i * n + d, n * len(keys), t("{method} of {n} texts with {key} ({i} of {m})…", method=method.upper(),
                                            n=len(all_texts), key=key, i=i + 1, m=len(keys))))
            if colour == "cluster":
                groups[key] = cluster_names(be.clusters(used[key], texts, n_clusters, seed, opts), t("cluster"),
                                            t("no vector"))
        except Exception as exc:
            errors[key] = str(exc).strip("'\"")
    bar.done()
    return texts, labels, coords, groups, notes, used, errors


def embedded_ui(corpus: Corpus, keys: list[str], method: str, seed: int, colour: str, n_clusters: int,
                options: dict) -> tuple:
    """Map an embedded corpus from its stored vectors: a seeded sample of the size chosen here, UMAP fitted on
    part of it and the rest placed with ``transform`` above the backend's fit limit (the caption says which)."""
    be = state.backend()
    # Above 100,000 points a browser chart stops being readable (and UMAP takes minutes): a sample says as much.
    n_all = len(corpus.texts)
    sizes = [n for n in (5_000, 20_000, 100_000) if n < n_all] + ([n_all] if n_all <= 100_000 else [])
    n_show = st.select_slider(t("Points to map"), sizes, value=sizes[0], format_func=lambda n: f"{n:,}",
                              key="proj_points", help=t("A seeded random sample of the corpus; above 20,000 UMAP is "
                                                        "fitted on 10,000 of them and places the rest."))
    st.caption(t("The query is not marked on an embedded corpus: its vectors were made elsewhere."))
    texts, labels, errors = None, None, {}
    coords, groups, notes, used = {}, {}, {}, {}
    bar = Progress(t("Projecting…"))
    routes = embedded_routes_ui(corpus, keys, options)
    for i, (shown, route) in enumerate(routes.items()):
        key, opts = route.key, route.options
        bar(i, len(routes), t("{method} of {n} stored vectors of {key} ({i} of {m})…", method=method.upper(),
                              n=f"{n_show:,}", key=key, i=i + 1, m=len(routes)))
        try:
            ec = be.open_corpus(corpus.path, key, opts).sample(n_show, seed)
            proj = be.project_detailed(key, ec, method, seed, options=opts)
            coords[shown], used[shown], notes[shown] = proj.coords, key, proj.info.describe()
            if colour == "cluster":
                groups[shown] = cluster_names(be.clusters(key, ec, n_clusters, seed, opts), t("cluster"),
                                              t("no vector"))
            if texts is None:
                texts = list(ec.texts)
                labels = None if ec.labels is None else ec.labels.tolist()
        except Exception as exc:
            errors[shown] = str(exc).strip("'\"")
    bar.done()
    return texts or [], labels, coords, groups, notes, used, errors


def labels_of(keys) -> dict[str, str]:
    """Registry labels of ``keys`` (the language variants that answered)."""
    reg = state.backend().registry
    return {k: reg[k].label for k in keys if k in reg}


def projection_ui() -> None:
    """The Projection page."""
    settings = page_settings()
    st.title(t("Projection"))
    st.caption(t("Where each model puts the corpus sentences: nearby points are texts the model finds similar."))
    corpus = corpus_ui()
    if corpus is None:
        st.stop()
    method, seed, colour, n_clusters, query = controls_ui(corpus.labels is not None)
    keys = models_ui(settings, role="encoder")
    if corpus.path is not None:
        texts, labels, coords, groups, notes, used, errors = embedded_ui(corpus, keys, method, seed, colour,
                                                                         n_clusters, settings.options)
        keys = [k for k in [*keys, *coords] if k in coords or k in errors]
        keys = list(dict.fromkeys(keys))
        query = ""
    else:
        texts, labels, coords, groups, notes, used, errors = texts_ui(corpus, keys, method, seed, colour, n_clusters,
                                                                      query, settings.options)
    st.caption(t("{method}, seed {seed}", method=method.upper(), seed=seed)
               + (t(", n_neighbors 15, min_dist 0.1, cosine metric") if method == "umap" else "")
               + " · " + t("{n} texts from the {name}. Same seed, same picture.", n=f"{len(texts):,}", name=corpus.name))
    shared = label_color_map(labels if colour == "label" and labels else [g for v in groups.values() for g in v],
                             no_vector=t("no vector"))
    grid = st.columns(2)
    rows = []
    for j, key in enumerate(keys):
        with grid[j % 2]:
            if key in errors:
                st.error(t("{label} ({key}) failed: {error}", label=settings.labels.get(key, key), key=key,
                           error=short_error(errors[key])))
                continue
            xy = coords[key]
            g = labels if colour == "label" and labels else groups.get(key, ["" for _ in texts])
            # Named by the model whose vectors drew it: sbert's map of a Chinese corpus is m3e-small's.
            title = answered_label(key, [used[key]], {**settings.labels, **labels_of(used.values())}) + (
                f" · {key} → {used[key]}" if used[key] != key else "")
            fig = projection_scatter(xy[: len(texts)], texts, g, shared, title, key,
                                     corpus.label_name if colour == "label" else t("cluster"),
                                     query or None, xy[len(texts)] if query else None, method.upper(), tr=t)
            st.plotly_chart(fig, key=f"proj_plot_{key}")
            if notes.get(key):
                st.caption("ℹ️ " + plain(tw(notes[key])))
            rows.append(pd.DataFrame({"model": used[key], "x": xy[: len(texts), 0], "y": xy[: len(texts), 1],
                                      "text": texts, "group": g}))
    if rows:
        download_ui(pd.concat(rows), f"projection_{method}_seed{seed}.csv", key="proj_download",
                    label=t("Download coordinates"))


projection_ui()
