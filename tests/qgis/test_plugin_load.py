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
    monkeypatch.setattr(plugin_package, "_platform", lambda: "darwin")  # QGIS's own Python
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
    assert "In Terminal, with the Python of QGIS.app" in text
    assert len(logged) == 1
    assert "osmnx" in logged[0]
    assert "pip install" in logged[0]


def test_missing_package_under_qgis_process_goes_to_stderr(
    plugin_package, monkeypatch, capsys, logged
):
    monkeypatch.setitem(sys.modules, "pulp", None)
    monkeypatch.setitem(sys.modules, "geopandas", None)
    monkeypatch.setattr(plugin_package, "_platform", lambda: "darwin")
    plugin = plugin_package.classFactory(None)  # qgis_process passes no iface
    plugin.initProcessing()
    err = capsys.readouterr().err
    first_line = err.splitlines()[0]
    assert "geopandas" in first_line
    assert "pulp" in first_line
    assert "-m pip install --user geopandas" in err
    assert '"PuLP<4"' in err  # plain text on stderr
    assert logged


def test_message_bar_and_log_are_escaped_and_give_debian_commands(
    plugin_package, monkeypatch, logged
):
    """QGIS reads the message bar and the log as HTML: "PuLP<4" must arrive as text."""
    monkeypatch.setitem(sys.modules, "pulp", None)
    monkeypatch.setitem(sys.modules, "scipy", None)
    monkeypatch.setattr(plugin_package, "_platform", lambda: "linux")
    monkeypatch.setattr(plugin_package, "debian_release", lambda: "13")
    iface = FakeIface()
    plugin = plugin_package.classFactory(iface)
    plugin.initGui()
    ((_, text, _, _),) = iface.bar.messages
    assert "&quot;PuLP&lt;4&quot;" in text
    assert "PuLP<4" not in text
    assert "sudo apt install python3-scipy python3-pip" in text
    assert "python3 -m pip install --user --break-system-packages &quot;PuLP&lt;4&quot;" in text
    assert "&lt;br&gt;" not in text
    assert "&quot;PuLP&lt;4&quot;" in logged[0]
    assert "<br>" in logged[0]


def test_debian_12_and_13_commands(plugin_package):
    missing = [("scipy", "scipy", ""), ("pyogrio", "pyogrio", ""), ("osmnx", "osmnx", ""),
               ("pulp", "PuLP<4", "")]  # fmt: skip
    assert plugin_package.debian_commands(missing, "13") == [
        "sudo apt install python3-scipy python3-pyogrio python3-pip",
        'python3 -m pip install --user --break-system-packages osmnx "PuLP<4"',
    ]
    # Debian 12: no python3-pyogrio; its geopandas is too old for osmnx, its pyproj for
    # geopandas 1.1; its GDAL needs numpy 1.x
    assert plugin_package.debian_commands(missing, "12") == [
        "sudo apt install python3-scipy python3-pip",
        "python3 -m pip install --user --break-system-packages pyogrio osmnx "
        '"PuLP<4" "geopandas<1.1" "numpy<2"',
    ]


def test_windows_names_the_osgeo4w_shell(plugin_package, monkeypatch):
    monkeypatch.setattr(plugin_package, "_platform", lambda: "win32")
    text = plugin_package.missing_message([("osmnx", "osmnx", "ImportError")])
    assert "OSGeo4W Shell" in text
    assert "-m pip install --user osmnx" in text
    assert "apt" not in text


def test_without_the_virtual_environment(plugin_on_path, tmp_path):
    """Debian's own Python and QGIS, no venv: the real message, with commands for this system."""
    import os
    import subprocess

    python = "/usr/bin/python3"
    if not os.path.exists(python):
        pytest.skip("no /usr/bin/python3")
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import territory_planner as tp; "
        "m = tp.missing_packages(); print(len(m)); tp.classFactory(None).initProcessing()"
    )
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "QT_QPA_PLATFORM": "offscreen"}
    run = subprocess.run([python, "-s", "-c", code, str(plugin_on_path)], env=env,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    if run.returncode != 0 and "No module named 'qgis'" in run.stderr:
        pytest.skip("QGIS's Python bindings are not installed for /usr/bin/python3")
    assert run.returncode == 0, run.stderr
    if run.stdout.split()[0] == "0":
        pytest.skip("every package is installed system-wide: nothing is missing")
    err = run.stderr
    assert "Traceback" not in err
    assert "cannot import" in err
    import territory_planner

    release = territory_planner.debian_release()
    if release:
        assert f"On Debian {release} (QGIS from apt):" in err
        assert "python3 -m pip install --user --break-system-packages" in err or "sudo apt" in err


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
