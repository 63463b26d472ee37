"""The computational core of the sentence-similarity dashboard (never imports streamlit).

Start with :class:`backend.serving.Backend`; models are declared in ``models/registry.toml``.
"""

from __future__ import annotations
