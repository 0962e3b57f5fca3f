"""INSA IIoT Workbench: the platform package (settings, storage, API, live events, rules, notebooks, UI)."""

__version__ = "0.1.0"
