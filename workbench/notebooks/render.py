"""Executed notebooks as HTML (nbconvert) for the API and the UI, optionally without code."""

from __future__ import annotations

import base64
import functools
import hashlib
import re
import threading
from pathlib import Path
from typing import Any

_lock = threading.Lock()
_STYLE = re.compile(r"<style[^>]*>(.*?)</style>", re.S | re.I)


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


def content_security_policy(html: str) -> str:
    """A strict policy under which ``html`` renders styled: its own style blocks by hash, nothing else runs.

    nbconvert's page carries its CSS in ``<style>`` blocks; ``'unsafe-inline'`` would admit any style an
    output injects, so each block is admitted by its SHA-256 instead. Scripts stay blocked (outputs are
    evidence, not applications); images may be inline (``data:``, as matplotlib's are).
    """
    digests = sorted(
        {
            base64.b64encode(hashlib.sha256(m.group(1).encode()).digest()).decode()
            for m in _STYLE.finditer(html)
        }
    )
    styles = " ".join(f"'sha256-{d}'" for d in digests) or "'none'"
    images = "img-src 'self' data:; font-src data:"
    return f"default-src 'none'; style-src {styles}; {images}; frame-ancestors 'none'"
