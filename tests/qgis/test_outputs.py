"""All-or-nothing outputs (processing_algorithms/outputs.py through base.engine_run)."""

from __future__ import annotations

import pytest

from .conftest import digest


@pytest.fixture(scope="module")
def failing_alg(territory_provider):
    """INPUT -> OUTPUT_A, OUTPUT_B (written in turn), then fails when FAIL is true."""
    from qgis.core import (
        QgsProcessingAlgorithm,
        QgsProcessingException,
        QgsProcessingParameterBoolean,
        QgsProcessingParameterFeatureSource,
    )
    from territory_planner.processing_algorithms import base
    from territory_planner.territory_planner_plugin.errors import Cancelled

    class TwoOutputs(QgsProcessingAlgorithm):
        def name(self):
            return "twooutputs"

        def displayName(self):
            return "two outputs"

        def createInstance(self):
            return type(self)()

        def initAlgorithm(self, config=None):
            self.addParameter(QgsProcessingParameterFeatureSource("INPUT", "in"))
            self.addParameter(QgsProcessingParameterBoolean("FAIL", "fail", False))
            self.addParameter(QgsProcessingParameterBoolean("CANCEL", "cancel", False))
            self.addParameter(base.sink_parameter("OUTPUT_A", "a"))
            self.addParameter(base.sink_parameter("OUTPUT_B", "b", optional=True))

        @base.engine_run
        def processAlgorithm(self, parameters, context, feedback):
            source = base.source_or_error(self, parameters, "INPUT", context)
            gdf = base.source_to_gdf(source, feedback=feedback, name="INPUT")
            a = base.write_sink(self, parameters, "OUTPUT_A", context, gdf, feedback=feedback)
            b = base.write_sink(self, parameters, "OUTPUT_B", context, gdf, feedback=feedback)
            if self.parameterAsBool(parameters, "CANCEL", context):
                raise Cancelled("Cancelled by the user.")
            if self.parameterAsBool(parameters, "FAIL", context):
                raise QgsProcessingException("the last step failed")
            return {"OUTPUT_A": a, "OUTPUT_B": b}

    alg = TwoOutputs()
    alg.initAlgorithm()
    return alg


def _points(path):
    """A small point GeoPackage at ``path`` (made with the engine's stack, not QGIS)."""
    import geopandas as gpd
    import shapely

    gpd.GeoDataFrame(
        {"name": ["a", "b"]}, geometry=shapely.points([(0, 0), (1, 1)]), crs="EPSG:3067"
    ).to_file(path, layer="points")
    return f"{path}|layername=points"


def test_failed_run_leaves_nothing_new_and_restores_replaced_files(failing_alg, tmp_path):
    import processing

    src = _points(tmp_path / "in.gpkg")
    old_b = tmp_path / "b.gpkg"
    _points(old_b)  # an earlier result at B's path
    before = digest(old_b)
    params = {"INPUT": src, "FAIL": True, "OUTPUT_A": str(tmp_path / "a.gpkg"),
              "OUTPUT_B": str(old_b)}  # fmt: skip
    with pytest.raises(Exception, match="the last step failed"):
        processing.run(failing_alg, params)
    assert not (tmp_path / "a.gpkg").exists()
    assert digest(old_b) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.gpkg", "in.gpkg"]


def test_cancelled_run_leaves_nothing_new(failing_alg, tmp_path):
    import processing

    src = _points(tmp_path / "in.gpkg")
    params = {"INPUT": src, "CANCEL": True, "OUTPUT_A": str(tmp_path / "a.shp"),
              "OUTPUT_B": str(tmp_path / "b.gpkg")}  # fmt: skip
    assert processing.run(failing_alg, params) == {}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.gpkg"]


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("missing/a.gpkg", "does not exist"),
        ("in.gpkg", "is one of this run's inputs"),
        (".", "is a folder"),
    ],
)
def test_bad_output_path_refused_before_any_work(failing_alg, tmp_path, output, message):
    import processing

    src = _points(tmp_path / "in.gpkg")
    before = digest(tmp_path / "in.gpkg")
    params = {"INPUT": src, "OUTPUT_A": str(tmp_path / "a.gpkg"),
              "OUTPUT_B": str(tmp_path / output)}  # fmt: skip
    with pytest.raises(Exception, match=f"OUTPUT_B: .*{message}"):
        processing.run(failing_alg, params)
    assert not (tmp_path / "a.gpkg").exists()  # refused before OUTPUT_A was written
    assert digest(tmp_path / "in.gpkg") == before


def test_successful_run_writes_both(failing_alg, tmp_path):
    import processing

    src = _points(tmp_path / "in.gpkg")
    params = {"INPUT": src, "OUTPUT_A": str(tmp_path / "a.gpkg"),
              "OUTPUT_B": str(tmp_path / "b.gpkg")}  # fmt: skip
    processing.run(failing_alg, params)
    assert (tmp_path / "a.gpkg").exists()
    assert (tmp_path / "b.gpkg").exists()
