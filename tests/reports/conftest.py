"""The report notebooks' tests share the report fixtures of tests/workbench/reports."""

from tests.workbench.reports.conftest import plant, report_platform, report_service

__all__ = ["plant", "report_platform", "report_service"]
