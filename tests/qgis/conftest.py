"""pytest-qgis fixtures: Processing initialised once, the Territory Planner provider added once.

The repository root is the plugin folder; it is exposed as ``build/plugins/territory_planner`` so
that the wrappers are imported as ``territory_planner.processing_algorithms...`` exactly as QGIS
imports them (their relative imports of the engine then work).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_DATA = ROOT / "sample_data"
PROVIDER_ID = "territory_planner"


def plugin_import_path() -> Path:
    """Create ``build/plugins/territory_planner -> ROOT`` and put ``build/plugins`` on sys.path."""
    plugins = ROOT / "build" / "plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    link = plugins / "territory_planner"
    if not link.is_symlink():
        if link.exists():
            shutil.rmtree(link)
        with contextlib.suppress(FileExistsError):  # made at the same moment by qgis_process.sh
            link.symlink_to(ROOT, target_is_directory=True)
    if str(plugins) not in sys.path:
        sys.path.insert(0, str(plugins))
    return plugins


ENGINE_MODULES = ("network", "catchments", "matrix", "territories")


def require_engine() -> None:
    """Skip (not fail) while an engine module the wrappers import is not in the tree yet.

    Once the file exists, any import error is a real failure and is reported as one.
    """
    absent = [
        m for m in ENGINE_MODULES if not (ROOT / "territory_planner_plugin" / f"{m}.py").exists()
    ]
    if absent:
        pytest.fail(f"engine module(s) missing from the tree: {', '.join(absent)}")


def sample_file(*patterns: str) -> Path:
    """The first sample_data file matching one of ``patterns``; fails the test when none exists."""
    for pattern in patterns:
        found = sorted(SAMPLE_DATA.glob(pattern))
        if found:
            return found[0]
    pytest.fail(f"sample_data has no {' / '.join(patterns)}: the shipped sample data is incomplete")
    raise AssertionError  # unreachable


def osm_sample() -> Path:
    """The Helsinki drive OSM extract shipped in sample_data (XML preferred, then PBF)."""
    return sample_file("*.osm", "*.osm.bz2", "*.osm.pbf", "*.pbf")


def digest(path: Path) -> str:
    """SHA-256 of a file, to check that an algorithm left its input untouched."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class CollectingFeedback:
    """Factory for a QgsProcessingFeedback that keeps every message it is given."""

    @staticmethod
    def create():
        from qgis.core import QgsProcessingFeedback

        class _Feedback(QgsProcessingFeedback):
            def __init__(self) -> None:
                super().__init__()
                self.infos: list[str] = []
                self.warnings: list[str] = []

            def pushInfo(self, info: str) -> None:
                self.infos.append(info)
                super().pushInfo(info)

            def pushWarning(self, warning: str) -> None:
                self.warnings.append(warning)
                super().pushWarning(warning)

            def text(self) -> str:
                return "\n".join(self.infos + self.warnings)

        return _Feedback()


@pytest.fixture(scope="session")
def plugin_on_path() -> Path:
    """``import territory_planner`` works (build/plugins on sys.path); returns build/plugins."""
    return plugin_import_path()


@pytest.fixture(scope="session")
def territory_provider(qgis_processing, plugin_on_path):
    """Register the provider once for the session (pytest-qgis initialised Processing)."""
    require_engine()
    from qgis.core import QgsApplication
    from territory_planner.processing_algorithms.provider import TerritoryPlannerProvider

    registry = QgsApplication.processingRegistry()
    provider = registry.providerById(PROVIDER_ID)
    if provider is None:
        provider = TerritoryPlannerProvider()
        assert registry.addProvider(provider)
    return provider


@pytest.fixture
def run_alg(territory_provider):
    """``run_alg("designterritories", params, feedback=None)`` -> processing.run results."""
    import processing
    from qgis.core import QgsProcessingContext, QgsProject

    def _run(alg_id: str, params: dict, feedback=None) -> dict:
        context = QgsProcessingContext()
        context.setProject(QgsProject.instance())
        return processing.run(f"{PROVIDER_ID}:{alg_id}", params, context=context, feedback=feedback)

    return _run


@pytest.fixture
def feedback():
    """A feedback object that records pushInfo/pushWarning messages."""
    return CollectingFeedback.create()


@pytest.fixture
def accounts_gpkg(tmp_path) -> Path:
    """A private copy of sample_data/accounts.gpkg (layer ``accounts``)."""
    src = sample_file("accounts.gpkg")
    dst = tmp_path / "accounts.gpkg"
    shutil.copy(src, dst)
    return dst


@pytest.fixture
def reps_gpkg(tmp_path) -> Path:
    """A private copy of sample_data/reps.gpkg (layer ``reps``)."""
    src = sample_file("reps.gpkg")
    dst = tmp_path / "reps.gpkg"
    shutil.copy(src, dst)
    return dst


@pytest.fixture(scope="session")
def network_gpkg(territory_provider, tmp_path_factory) -> Path:
    """The sample OSM extract built once into a network GeoPackage through buildroadnetwork."""
    import processing

    osm = osm_sample()
    out = tmp_path_factory.mktemp("network") / "network.gpkg"
    result = processing.run(
        f"{PROVIDER_ID}:buildroadnetwork",
        {"INPUT_OSM": str(osm), "NETWORK_TYPE": 0, "OUTPUT": str(out)},
    )
    assert Path(result["OUTPUT"]).exists()
    return Path(result["OUTPUT"])


def read_layer(path, layer=None):
    """Read an output with pyogrio/geopandas (tables come back as DataFrames)."""
    import pyogrio

    path = str(path)
    if "|layername=" in path:
        path, layer = path.split("|layername=", 1)
    return pyogrio.read_dataframe(path, layer=layer)


@pytest.fixture(scope="session")
def tp():
    """Helpers for the tests (conftest modules cannot be imported under importlib mode)."""
    from types import SimpleNamespace

    return SimpleNamespace(read_layer=read_layer, digest=digest, sample_file=sample_file, root=ROOT)


os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
