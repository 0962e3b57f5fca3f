"""The one plugin registry: actions, rule types, report formats, protocol connectors and codecs, by kind.

Built-ins and third-party code come in through the same door, :func:`register`. Each kind's own module keeps
its typed helpers (``workbench.rules.types.register_rule_type``, ``workbench.rules.actions.register_action``,
``workbench.reports.formats.register``, ``ingest.connectors.registry.register``,
``ingest.push.registry.register``); they all store here and
import their built-in modules on first use. Third-party plugins are modules that register on import, named by
a Python entry point in the ``workbench.plugins`` group (as papermill's engines and Datasette's plugins)::

    [project.entry-points."workbench.plugins"]
    my_action = "my_package.workbench_action"

or by the ``WORKBENCH_PLUGINS`` setting (comma-separated module names). :func:`load` imports them at start.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable, Iterable
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "workbench.plugins"
# The kinds of plugin and, for each, what a plugin is (the README's plugin table lists every registered one).
KINDS = {
    "action": "what a rule does when it fires (workbench.rules.actions.base.Action)",
    "rule_type": "how a rule's condition is evaluated (workbench.rules.types.RuleType)",
    "report_format": "how an executed report notebook is rendered (workbench.reports.formats.ReportFormat)",
    "connector": "a polled device protocol (ingest.connectors.base.DeviceConnector)",
    "codec": "a pushed protocol: its MQTT topics and how a message decodes (ingest.push.base.PushCodec)",
}

T = TypeVar("T")
_plugins: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}
_loaded: set[str] = set()
_lock = threading.Lock()


def register(kind: str, name: str, plugin: Any) -> Any:
    """Register ``plugin`` as the ``kind`` called ``name`` (replacing one of that name); returns it."""
    if kind not in KINDS:
        raise ValueError(f"unknown plugin kind {kind!r}; known: {', '.join(KINDS)}")
    if not name:
        raise ValueError(f"a {kind} plugin needs a name")
    _plugins[kind][name] = plugin
    return plugin


def unregister(kind: str, name: str) -> None:
    """Forget the ``kind`` called ``name`` (a no-op when absent)."""
    _plugins[kind].pop(name, None)


def get(kind: str, name: str) -> Any:
    """The ``kind`` called ``name`` (KeyError when none is registered)."""
    return _plugins[kind][name]


def registered(kind: str) -> dict[str, Any]:
    """The plugins of ``kind`` by name, in registration order (a copy)."""
    return dict(_plugins[kind])


def load(modules: Iterable[str] = ()) -> list[str]:
    """Import the entry points' plugin modules and ``modules``, once each; returns the modules imported now.

    A plugin that fails to import is logged and skipped, so one broken package cannot stop the platform.
    """
    found: list[tuple[str, Callable[[], Any]]] = [
        (ep.value, ep.load) for ep in entry_points(group=ENTRY_POINT_GROUP)
    ]
    for module in (m.strip() for m in modules):
        if module:
            found.append((module, lambda m=module: importlib.import_module(m)))  # type: ignore[misc]
    done = []
    with _lock:
        for name, importer in found:
            if name in _loaded:
                continue
            _loaded.add(name)
            try:
                importer()
            except Exception:
                log.exception("plugin module %s failed to load", name)
                continue
            done.append(name)
    return done


class Kind(Generic[T]):
    """One kind of plugin, typed: it registers here and imports its built-in modules on first use."""

    def __init__(self, kind: str, builtins: tuple[str, ...]) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown plugin kind {kind!r}; known: {', '.join(KINDS)}")
        self.kind = kind
        self.builtins = builtins
        self._ready = False

    def register(self, name: str, plugin: T) -> T:
        """Register ``plugin`` under ``name``; returns it."""
        registered_plugin: T = register(self.kind, name, plugin)
        return registered_plugin

    def get(self, name: str) -> T:
        """The plugin called ``name`` (KeyError when unknown)."""
        self._load()
        found: T = _plugins[self.kind][name]
        return found

    def all(self) -> dict[str, T]:
        """Every plugin of this kind by name, in registration order."""
        self._load()
        return dict(_plugins[self.kind])

    def _load(self) -> None:
        # Lazily: some built-ins are slow to import (asyncua, pymodbus) and not every process needs them.
        if not self._ready:
            for module in self.builtins:
                importlib.import_module(module)
            self._ready = True
