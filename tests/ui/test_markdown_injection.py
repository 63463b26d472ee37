"""User text never turns into Markdown on the dashboard: links, images and HTML fed through a shared link, a file
name, a column header and table cells reach every element that renders Markdown (titles, subheaders, captions,
alerts, expander labels, st.table cells) escaped by ui.escape.plain."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from tests.ui.conftest import app
from ui.escape import plain

EVIL = "[click](http://evil.example/x) ![pic](http://evil.example/p.png) <img src=x onerror=alert(1)> **bold**"
#: a Markdown link or image whose brackets are not escaped
LINK = re.compile(r"(?<!\\)\[[^\]]*(?<!\\)\]\(")
#: an HTML tag or emphasis that is not escaped
RAW = re.compile(r"(?<!\\)<img|(?<!\\)\*(?<!\\)\*bold")


def rendered(at) -> list[str]:
    """The Markdown source of everything the page shows that Streamlit renders as Markdown."""
    out = [str(e.value) for kind in ("markdown", "caption", "subheader", "title", "header", "info", "warning",
                                      "error", "success") for e in getattr(at, kind)]
    out += [str(e.label) for e in at.expander]
    for tbl in at.table:
        value = tbl.value
        if isinstance(value, pd.DataFrame):
            out += [str(c) for c in value.columns] + [str(v) for v in value.to_numpy().ravel()]
    return out


def assert_safe(at, must_show: str) -> None:
    shown = rendered(at)
    bad = [s for s in shown if LINK.search(s) or RAW.search(s)]
    assert not bad, f"unescaped user Markdown/HTML reached the page: {bad[:3]}"
    assert any(must_show in s for s in shown), f"{must_show!r} was not shown escaped anywhere"


def test_plain_escapes_links_images_html_and_emphasis():
    out = plain(EVIL)
    assert not LINK.search(out) and not RAW.search(out) and LINK.search(EVIL) and RAW.search(EVIL)
    assert plain("a\nb   c", width=4) == "a b…"


@pytest.mark.slow
def test_a_shared_compare_link_shows_its_text_as_text():
    at = app("compare", a=[EVIL, "a cat"], b=["a dog", EVIL], models=["w2v"])
    assert_safe(at, plain("[click]"))


@pytest.mark.slow
def test_a_batch_file_name_and_label_header_show_as_text():
    header = "![h](http://evil.example/h.png)"
    rows = [["sentence1", "sentence2", header], ["a cat sleeps", "a cat is sleeping", 1], ["a dog", "the stock market", 0],
            ["I like tea", "I love tea", 1], ["rain", "my red car", 0]]
    data = "\n".join(",".join(map(str, r)) for r in rows).encode()
    at = app("batch", models=["w2v"])
    at.file_uploader[0].set_value(("[x](http://evil.example).csv", data, "text/csv")).run()
    assert not at.exception, [e.value for e in at.exception]
    assert_safe(at, plain("[x]"))
    next(s for s in at.selectbox if s.key.endswith("_label")).set_value(header).run()
    at.button(key="batch_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert_safe(at, plain(header))
