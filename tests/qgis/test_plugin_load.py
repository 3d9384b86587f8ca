"""Start-up: a missing dependency is reported with what to install, never raised."""

from __future__ import annotations

import importlib
import sys

import pytest


class FakeMessageBar:
    def __init__(self) -> None:
        self.messages: list[tuple] = []

    def pushMessage(self, title, text, level=None, duration=None) -> None:
        self.messages.append((title, text, level, duration))


class FakeIface:
    def __init__(self) -> None:
        self.bar = FakeMessageBar()

    def messageBar(self) -> FakeMessageBar:
        return self.bar


@pytest.fixture
def plugin_package(plugin_on_path):
    """The plugin package as QGIS imports it (``territory_planner`` from build/plugins)."""
    return importlib.import_module("territory_planner")


@pytest.fixture
def logged(monkeypatch):
    """Messages sent to QgsMessageLog by plugin.py."""
    from territory_planner import plugin

    messages = []
    monkeypatch.setattr(
        plugin.QgsMessageLog,
        "logMessage",
        lambda text, tag="", level=None, *a: messages.append(text),
    )
    return messages


def _provider_ids():
    from qgis.core import QgsApplication

    return sorted(p.id() for p in QgsApplication.processingRegistry().providers())


def test_missing_package_is_reported_not_raised(plugin_package, monkeypatch, logged):
    monkeypatch.setitem(sys.modules, "osmnx", None)  # "import osmnx" now raises ImportError
    before = _provider_ids()
    iface = FakeIface()

    plugin = plugin_package.classFactory(iface)
    plugin.initGui()
    plugin.initProcessing()
    plugin.unload()

    assert type(plugin).__name__ == "MissingDependenciesPlugin"
    assert _provider_ids() == before  # nothing registered, nothing removed
    assert len(iface.bar.messages) == 1
    title, text, _, duration = iface.bar.messages[0]
    assert title == "Territory Planner"
    assert duration == 0
    assert "osmnx" in text
    assert "-m pip install --user osmnx" in text
    assert len(logged) == 1
    assert "osmnx" in logged[0]
    assert "pip install" in logged[0]


def test_missing_package_under_qgis_process_goes_to_stderr(
    plugin_package, monkeypatch, capsys, logged
):
    monkeypatch.setitem(sys.modules, "pulp", None)
    monkeypatch.setitem(sys.modules, "geopandas", None)
    plugin = plugin_package.classFactory(None)  # qgis_process passes no iface
    plugin.initProcessing()
    err = capsys.readouterr().err
    first_line = err.splitlines()[0]
    assert "geopandas" in first_line
    assert "pulp" in first_line
    assert "-m pip install --user geopandas" in err
    assert '"PuLP<4"' in err
    assert logged


def test_broken_package_counts_as_missing(plugin_package, monkeypatch):
    class Broken:
        def find_spec(self, name, path=None, target=None):
            if name == "tp_broken_pkg":
                raise RuntimeError("compiled against another numpy")
            return

    monkeypatch.setattr(sys, "meta_path", [Broken(), *sys.meta_path])
    missing = plugin_package.missing_packages((("tp_broken_pkg", "tp-broken-pkg"),))
    assert missing
    assert missing[0][0] == "tp_broken_pkg"
    assert "RuntimeError" in missing[0][2]
    assert "tp-broken-pkg" in plugin_package.install_command(missing)


def test_install_command_uses_a_python_interpreter(plugin_package):
    command = plugin_package.install_command([("osmnx", "osmnx", "")])
    python = command.split(" -m pip")[0].strip('"')
    assert "python" in python.lower()


def test_all_dependencies_present_gives_the_real_plugin(plugin_package, territory_provider):
    assert plugin_package.missing_packages() == []
    plugin = plugin_package.classFactory(None)
    assert type(plugin).__name__ == "TerritoryPlannerPlugin"
    before = _provider_ids()
    plugin.initProcessing()  # the session already registered the id: must not clash
    plugin.unload()
    assert _provider_ids() == before
