"""Executed notebooks as HTML (nbconvert) for the API and the UI, optionally without code."""

from __future__ import annotations

import functools
import threading
from pathlib import Path
from typing import Any

_lock = threading.Lock()


@functools.cache
def _exporter(hide_code: bool) -> Any:
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab")
    exporter.exclude_input = hide_code
    exporter.exclude_input_prompt = hide_code
    exporter.exclude_output_prompt = hide_code
    return exporter


def render_html(path: str | Path, hide_code: bool = False) -> str:
    """A standalone HTML page of the executed notebook at ``path`` (``hide_code`` keeps outputs only)."""
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    with _lock:  # nbconvert exporters keep per-call state: one render at a time per exporter
        body, _ = _exporter(hide_code).from_notebook_node(nb)
    html: str = body
    return html
