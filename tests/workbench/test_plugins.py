"""The one plugin registry: built-ins and third-party modules (entry points, WORKBENCH_PLUGINS) alike."""

from __future__ import annotations

import re
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.connectors.registry import protocols
from ingest.push.registry import codecs
from workbench import plugins
from workbench.reports import formats
from workbench.rules.actions import action, actions
from workbench.rules.types import rule_types

README = Path(__file__).resolve().parents[2] / "README.md"
PLUGIN = '''
from workbench.rules.actions import Action, register_action


class Hello(Action):
    """A test action."""

    name = "{name}"


register_action(Hello)
'''


def _all_builtins() -> dict[str, set[str]]:
    import workbench.notebooks.rule_type  # noqa: F401 - the notebook rule type registers on import

    rule_types(), actions(), formats.names(), protocols(), codecs()
    return {
        kind: {name for name, plugin in plugins.registered(kind).items() if not _from_tests(plugin)}
        for kind in plugins.KINDS
    }


def _from_tests(plugin: object) -> bool:
    """Plugins other tests register for themselves (the registry is process-wide) are not the product's."""
    module = plugin.__module__ if isinstance(plugin, type) else type(plugin).__module__
    return module.startswith("tests.")


def _readme_table() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {kind: set() for kind in plugins.KINDS}
    for kind, name in re.findall(r"^\| (\w+) \| `([\w-]+)` \|", README.read_text(), re.MULTILINE):
        if kind in found:
            found[kind].add(name)
    return found


def test_every_registered_plugin_is_in_the_readme_table() -> None:
    registered = _all_builtins()
    assert all(registered.values()), registered  # each kind has built-ins: the comparison means something
    table = _readme_table()
    for kind in plugins.KINDS:
        missing = registered[kind] - table[kind]
        assert not missing, f"README plugin table lacks {kind} {sorted(missing)}"
        stale = table[kind] - registered[kind]
        assert not stale, f"README plugin table lists unregistered {kind} {sorted(stale)}"


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder on sys.path for plugin modules and distributions made by a test."""
    sys.path.insert(0, str(tmp_path))
    yield tmp_path
    sys.path.remove(str(tmp_path))


def test_modules_named_by_the_setting_register_and_broken_ones_are_skipped(
    plugin_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tag = uuid.uuid4().hex[:8]
    (plugin_dir / f"wb_plugin_{tag}.py").write_text(PLUGIN.format(name=f"hello-{tag}"))
    (plugin_dir / f"wb_broken_{tag}.py").write_text("raise RuntimeError('no')\n")
    try:
        loaded = plugins.load([f" wb_plugin_{tag}", f"wb_broken_{tag}", ""])
        assert loaded == [f"wb_plugin_{tag}"]
        assert action(f"hello-{tag}").name == f"hello-{tag}"
        assert f"wb_broken_{tag} failed to load" in caplog.text
        assert plugins.load([f"wb_plugin_{tag}"]) == []  # once each
    finally:
        plugins.unregister("action", f"hello-{tag}")


def test_entry_points_of_installed_distributions_load(plugin_dir: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    (plugin_dir / f"wb_entry_{tag}.py").write_text(PLUGIN.format(name=f"entry-{tag}"))
    dist = plugin_dir / f"wb_entry_{tag}-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: wb-entry-{tag}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[{plugins.ENTRY_POINT_GROUP}]\nhello = wb_entry_{tag}\n")
    try:
        assert f"wb_entry_{tag}" in plugins.load()
        assert f"entry-{tag}" in actions()
    finally:
        plugins.unregister("action", f"entry-{tag}")


def test_unknown_kinds_and_names_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown plugin kind"):
        plugins.register("widget", "x", object())
    with pytest.raises(ValueError, match="needs a name"):
        plugins.register("action", "", object())
    with pytest.raises(KeyError):
        plugins.get("action", f"absent-{uuid.uuid4().hex}")
