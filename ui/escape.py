"""The one escaping helper for user text on the dashboard.

Streamlit renders Markdown in titles, subheaders, captions, alerts, expander labels, widget labels and the cells of
``st.table``. Text a user supplies (a file name, a column header, a cell, a sentence from a shared link, an error
message quoting any of these) goes through :func:`plain` before it reaches one of them, so it cannot turn into a
link with a disguised target, an image the visitor's browser fetches, or HTML. A bare URL in the text still shows
as itself (GitHub-style autolinking), with its real address.
"""

from __future__ import annotations

import re

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$])")


def plain(text: str, width: int | None = None) -> str:
    """User text made safe for a Markdown label (expander titles, tabs, captions): no link, image or HTML can be
    smuggled in through a shared URL. ``width`` cuts it with an ellipsis first."""
    text = str(text)
    if width is not None and len(text) > width:
        text = text[: width - 1] + "…"
    return _MD_SPECIAL.sub(r"\\\1", " ".join(text.split()))


__all__ = ["plain"]
