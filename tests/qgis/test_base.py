"""Wrapper plumbing in processing_algorithms/base.py: layer <-> GeoDataFrame, logs, errors."""

from __future__ import annotations

import logging
import threading

import pytest

SEEN: list = []  # frames read by the roundtrip algorithm


@pytest.fixture(scope="module")
def base(territory_provider):
    from territory_planner.processing_algorithms import base

    return base


@pytest.fixture(scope="module")
def roundtrip_alg(base):
    """A throwaway algorithm: INPUT -> source_to_gdf -> (optional engine step) -> write_sink."""
    from qgis.core import (
        QgsProcessing,
        QgsProcessingAlgorithm,
        QgsProcessingParameterFeatureSource,
    )

    class Roundtrip(QgsProcessingAlgorithm):
        def name(self):
            return "roundtrip"

        def displayName(self):
            return "roundtrip"

        def createInstance(self):
            return type(self)()

        def initAlgorithm(self, config=None):
            self.addParameter(QgsProcessingParameterFeatureSource("INPUT", "in"))
            self.addParameter(base.sink_parameter("OUTPUT", "out"))
            self.addParameter(base.sink_parameter("TABLE", "table", QgsProcessing.TypeVector))

        @base.engine_run
        def processAlgorithm(self, parameters, context, feedback):
            source = base.source_or_error(self, parameters, "INPUT", context)
            gdf = base.source_to_gdf(
                source, feedback=feedback, name="INPUT", target_crs="EPSG:3067"
            )
            SEEN.append(gdf)  # test only: lets the test look at the frame
            out = base.write_sink(self, parameters, "OUTPUT", context, gdf, feedback=feedback)
            table = base.write_sink(
                self, parameters, "TABLE", context, gdf, feedback=feedback, geometry=False
            )
            return {"OUTPUT": out, "TABLE": table}

    alg = Roundtrip()
    alg.initAlgorithm()
    return alg


def _memory_layer():
    from qgis.core import QgsFeature, QgsGeometry, QgsPointXY, QgsVectorLayer
    from qgis.PyQt.QtCore import QDate, QVariant

    layer = QgsVectorLayer(
        "Point?crs=EPSG:4326&field=name:string&field=visits:integer&field=revenue:double"
        "&field=active:boolean&field=since:date&field=big:int8",
        "accounts",
        "memory",
    )
    rows = [
        ("a", 3, 10.5, True, QDate(2024, 1, 2), 2**40, (24.90, 60.17)),
        ("b", None, None, False, None, 5, (24.95, 60.20)),
        (None, 7, 1.0, True, QDate(2025, 6, 30), None, (24.85, 60.15)),
    ]
    features = []
    for name, visits, revenue, active, since, big, (x, y) in rows:
        feature = QgsFeature(layer.fields())
        feature.setAttributes(
            [
                name if name is not None else QVariant(),
                visits if visits is not None else QVariant(),
                revenue if revenue is not None else QVariant(),
                active,
                since if since is not None else QVariant(),
                big if big is not None else QVariant(),
            ]
        )
        feature.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(x, y)))
        features.append(feature)
    assert layer.dataProvider().addFeatures(features)[0]
    return layer


def test_layer_to_frame_to_sink_roundtrip(roundtrip_alg, tmp_path):
    import processing
    from qgis.core import NULL, QgsProcessingContext, QgsProcessingFeedback, QgsVectorLayer

    layer = _memory_layer()
    context = QgsProcessingContext()
    feedback = QgsProcessingFeedback()
    out = tmp_path / "out.gpkg"
    results = processing.run(
        roundtrip_alg,
        {"INPUT": layer, "OUTPUT": str(out), "TABLE": "TEMPORARY_OUTPUT"},
        context=context,
        feedback=feedback,
    )
    gdf = SEEN[-1]
    assert str(gdf.crs) == "EPSG:3067"  # reprojected as asked
    assert list(gdf.columns) == [
        "name",
        "visits",
        "revenue",
        "active",
        "since",
        "big",
        "fid",
        "geometry",
    ]
    assert gdf["visits"].dtype == "float64"  # int with NULL -> float with NaN
    assert gdf["big"].isna().sum() == 1
    assert gdf.loc[0, "big"] == 2**40
    assert gdf["active"].dtype == bool
    assert gdf["name"].tolist()[2] is None
    assert str(gdf.loc[0, "since"]) == "2024-01-02"

    written = QgsVectorLayer(f"{out}|layername=out", "out", "ogr")
    assert written.isValid()
    assert written.featureCount() == 3
    assert written.crs().authid() == "EPSG:3067"
    names = written.fields().names()
    assert {"name", "visits", "revenue", "active", "since", "big"} <= set(names)
    values = {f["name"]: f for f in written.getFeatures() if f["name"]}
    assert values["a"]["visits"] == 3
    assert values["a"]["big"] == 2**40
    assert values["b"]["revenue"] == NULL
    assert values["b"]["visits"] == NULL
    table = results["TABLE"]
    assert table.featureCount() == 3
    assert not table.isSpatial()
    assert layer.featureCount() == 3  # input untouched


def test_log_records_reach_feedback_from_this_thread_only(base):
    from qgis.core import QgsProcessingFeedback

    class Recorder(QgsProcessingFeedback):
        def __init__(self):
            super().__init__()
            self.got = []

        def pushInfo(self, text):
            self.got.append(("info", text))

        def pushWarning(self, text):
            self.got.append(("warning", text))

    feedback = Recorder()
    engine_logger = logging.getLogger(base.engine_package.__name__ + ".network")
    with base.forward_engine_log(feedback):
        engine_logger.info("built %d nodes", 5)
        engine_logger.warning("3 components")
        other = threading.Thread(target=lambda: engine_logger.warning("other thread"))
        other.start()
        other.join()
    engine_logger.warning("after the run")
    assert feedback.got == [("info", "built 5 nodes"), ("warning", "3 components")]


def test_engine_errors_become_processing_exceptions(base):
    from qgis.core import QgsProcessingException, QgsProcessingFeedback
    from territory_planner.territory_planner_plugin.errors import Cancelled, InfeasibleError

    class Fake:
        @base.engine_run
        def processAlgorithm(self, parameters, context, feedback):
            raise parameters["error"]

    with pytest.raises(QgsProcessingException, match="relax TOLERANCE"):
        Fake().processAlgorithm({"error": InfeasibleError("relax TOLERANCE")}, None, None)
    assert (
        Fake().processAlgorithm({"error": Cancelled("stop")}, None, QgsProcessingFeedback()) == {}
    )
    with pytest.raises(ZeroDivisionError):  # anything else keeps its traceback
        Fake().processAlgorithm({"error": ZeroDivisionError()}, None, None)


@pytest.mark.parametrize(
    ("text", "expected"), [("5,10,15", [5, 10, 15]), (" 7.5 ; 2 ", [7.5, 2]), ("", [])]
)
def test_parse_number_list(base, text, expected):
    assert base.parse_number_list(text, "BANDS") == expected


@pytest.mark.parametrize("text", ["5,x", "-1", "nan"])
def test_parse_number_list_names_the_parameter(base, text):
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match="BANDS"):
        base.parse_number_list(text, "BANDS")


def test_progress_and_cancel_callbacks(base):
    from qgis.core import QgsProcessingFeedback

    root = QgsProcessingFeedback()
    steps = base.step_feedback(root, 2)
    progress, is_cancelled = base.engine_callbacks(steps, root=root)
    steps.setCurrentStep(1)
    progress(0.5, "half")
    assert root.progress() == pytest.approx(75.0)
    assert not is_cancelled()
    root.cancel()
    assert is_cancelled()
