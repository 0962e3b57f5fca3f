"""Report formats are plugins: a class with ``configuration_schema()`` and one verb, ``render``.

Built-in formats (html, pdf, excel, zip) register through :func:`register` like third-party ones would.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import nbformat

from workbench import plugins
from workbench.reports.kit import Table


@dataclass
class ExecutedReport:
    """Everything a format needs: the executed notebook, the tables it exported, and its provenance."""

    report_id: str
    notebook_name: str
    notebook: nbformat.NotebookNode
    notebook_path: Path
    parameters: dict[str, Any]
    notebook_hash: str
    data_hash: str | None
    tables: list[Table] = field(default_factory=list)
    title: str = "Report"
    work_dir: Path = Path(".")

    def provenance(self) -> dict[str, Any]:
        """What makes the report reproducible: notebook, parameters and hashes."""
        return {
            "report_id": self.report_id,
            "title": self.title,
            "notebook": self.notebook_name,
            "notebook_hash": self.notebook_hash,
            "data_hash": self.data_hash,
            "parameters": self.parameters,
        }

    @cached_property
    def html(self) -> str:
        """The executed notebook as HTML with code hidden (rendered once, shared by html, pdf and zip)."""
        from workbench.reports.html import notebook_html

        return notebook_html(self)

    def provenance_json(self) -> str:
        """The provenance as indented JSON."""
        return json.dumps(self.provenance(), indent=2, default=str)


class ReportFormat(ABC):
    """A way to deliver a report: ``render`` writes the file for an executed report to ``target``."""

    name: ClassVar[str]
    extension: ClassVar[str]
    media_type: ClassVar[str]

    @classmethod
    def configuration_schema(cls) -> dict[str, Any]:
        """JSON schema of the options this format accepts (none by default)."""
        return {"type": "object", "properties": {}, "additionalProperties": False}

    @abstractmethod
    def render(self, report: ExecutedReport, target: Path, options: dict[str, Any]) -> None:
        """Write the report to ``target`` (a temporary path the caller renames on success)."""


FORMATS: plugins.Kind[type[ReportFormat]] = plugins.Kind("report_format", ("workbench.reports.builtin",))


def register(format_class: type[ReportFormat]) -> type[ReportFormat]:
    """Register a format under its ``name`` (usable as a class decorator)."""
    return FORMATS.register(format_class.name, format_class)


def get(name: str) -> ReportFormat:
    """A fresh instance of the named format; ``KeyError`` names the known ones."""
    try:
        format_class = FORMATS.get(name)
    except KeyError:
        raise KeyError(f"unknown report format {name!r}; known: {', '.join(names())}") from None
    return format_class()


def names() -> list[str]:
    """Every registered format name."""
    return sorted(FORMATS.all())
