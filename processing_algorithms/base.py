"""Shared pieces of the Territory Planner Processing wrappers.

One builder per shared parameter (NETWORK, MAX_SNAP, SEED, TIME_LIMIT, SOLVER, output sinks), the
layer <-> GeoDataFrame conversion, the engine log forwarding, progress/cancel callables built from
Processing feedback, the mapping of engine errors to ``QgsProcessingException`` and the run
manifests of the planning algorithms (MANIFEST / OUTPUT_MANIFEST, see add_manifest_parameters).
Nothing here keeps run state: every helper takes what it needs as arguments.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import math
import os
import re
import threading
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd
from qgis.core import (
    Qgis,
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsFeatureRequest,
    QgsFeatureSink,
    QgsField,
    QgsFields,
    QgsGeometry,
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingFeatureSourceDefinition,
    QgsProcessingFeedback,
    QgsProcessingMultiStepFeedback,
    QgsProcessingOutputLayerDefinition,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QCoreApplication, QDate, QDateTime, QTime, QUrl, QVariant
from qgis.PyQt.QtGui import QIcon

from .. import territory_planner_plugin as engine_package
from ..territory_planner_plugin import manifest as run_manifest
from ..territory_planner_plugin.errors import Cancelled, TerritoryPlannerError

PLUGIN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ICON_DIR = os.path.join(PLUGIN_DIR, "icons")
HELP_DIR = os.path.join(PLUGIN_DIR, "help")
PROVIDER_ICON = os.path.join(ICON_DIR, "territory_planner.svg")

# Parameter keys shared by several algorithms (public contract, do not rename).
NETWORK = "NETWORK"
MAX_SNAP = "MAX_SNAP"
SEED = "SEED"
TIME_LIMIT = "TIME_LIMIT"
SOLVER = "SOLVER"
MANIFEST = "MANIFEST"
OUTPUT_MANIFEST = "OUTPUT_MANIFEST"

NETWORK_FILE_FILTER = (
    "Road networks (*.gpkg *.osm *.pbf *.osm.pbf *.bz2 *.osm.bz2 *.graphml);;"
    "Territory Planner network (*.gpkg);;OpenStreetMap (*.osm *.pbf *.osm.pbf *.bz2 *.osm.bz2);;"
    "GraphML (*.graphml)"
)
# (engine value, label) pairs: the label list feeds the enum, the index decodes to the value.
SOLVERS = (("CBC", "CBC (bundled with PuLP)"), ("HiGHS", "HiGHS (needs highspy)"))

LOG = logging.getLogger(__name__)
PROJECTED = "projected"  # source_to_gdf target: the local UTM zone when the source is lon/lat


# Libraries whose deprecation notices (PuLP's bundled CBC, OSMnx, pandas...) mean nothing to a
# user: kept out of the Processing log (see quiet_third_party_warnings).
THIRD_PARTY = (r"(pulp|osmnx|networkx|geopandas|pyogrio|fiona|shapely|pyproj|pandas|numpy|scipy"
               r"|highspy|osmium|sip|osgeo)(\.|$)")  # fmt: skip


def quiet_third_party_warnings() -> None:
    """Ignore DeprecationWarning, PendingDeprecationWarning and FutureWarning raised inside the
    third-party libraries the plugin uses (only those: other warnings still show)."""
    for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category, module=THIRD_PARTY)


quiet_third_party_warnings()


# --------------------------------------------------------------------------------------------
# Algorithm base class
# --------------------------------------------------------------------------------------------
class TerritoryPlannerAlgorithm(QgsProcessingAlgorithm):
    """Common identity, help and icon plumbing; subclasses set the class attributes below."""

    ALGORITHM_ID = ""
    DISPLAY_NAME = ""
    GROUP = "Road network"
    GROUP_ID = "network"

    def name(self) -> str:
        return self.ALGORITHM_ID

    def displayName(self) -> str:
        return self.tr(self.DISPLAY_NAME)

    def group(self) -> str:
        return self.tr(self.GROUP)

    def groupId(self) -> str:
        return self.GROUP_ID

    def tr(self, text: str) -> str:
        return QCoreApplication.translate(type(self).__name__, text)

    def createInstance(self) -> TerritoryPlannerAlgorithm:
        return type(self)()

    def shortHelpString(self) -> str:
        return load_help(self.name())

    def helpUrl(self) -> str:
        path = help_path(self.name())
        return QUrl.fromLocalFile(path).toString() if path else ""

    def icon(self) -> QIcon:
        return QIcon(self.svgIconPath())

    def svgIconPath(self) -> str:
        path = os.path.join(ICON_DIR, f"{self.name()}.svg")
        return path if os.path.exists(path) else PROVIDER_ICON

    def checkParameterValues(self, parameters: dict, context) -> tuple[bool, str]:
        """QGIS's check, with each refusal naming the parameter, its allowed range or form and
        the value given (instead of "Incorrect parameter value for X")."""
        for definition in self.parameterDefinitions():
            problem = parameter_problem(definition, parameters.get(definition.name()), context)
            if problem:
                return False, problem
        return super().checkParameterValues(parameters, context)


# Parameters that must be greater than 0 (a zero limit would refuse or drop everything), with
# their unit, and the allowed form of the text parameters (by public key).
POSITIVE_LIMITS = {"MAX_SNAP": "metres", "MAX_MINUTES": "minutes", "REP_MAX_MINUTES": "minutes",
                   "TIME_LIMIT": "seconds"}  # fmt: skip
TEXT_FORMS = {
    "BANDS": "increasing positive minutes separated by commas, like 5,10,15",
    "BALANCE_WEIGHTS": "numbers of 0 or more separated by commas, one per balance field, like 2,1",
    "SPEEDS": "road type=km/h pairs separated by commas, like motorway=100,residential=30",
}


def parameter_problem(definition: QgsProcessingParameterDefinition, value: Any, context) -> str:
    """Why ``value`` is refused for ``definition`` (its key, allowed range or form and the value
    given), or '' when it is acceptable."""
    key, kind = definition.name(), definition.type()
    unset = _unset(value)
    if kind in ("number", "distance") and not unset and not _is_property(value):
        return _number_problem(definition, value)
    if kind == "string" and key == "BANDS" and not unset:
        return _list_problem(key, value, strictly_positive=True)
    if kind == "string" and key == "BALANCE_WEIGHTS" and not unset:
        return _list_problem(key, value, strictly_positive=False)
    if definition.checkValueIsAcceptable(value, context):
        return ""
    if unset:
        return f"{key} ({definition.description()}) is required: give a value."
    shown = repr(_python_value(value))
    if kind == "enum":
        options = ", ".join(f"{i} = {label}" for i, label in enumerate(definition.options()))
        return f"{key} must be one of {options} (got {shown})."
    if key in TEXT_FORMS:
        return f"{key} must be {TEXT_FORMS[key]} (got {shown})."
    if kind in ("source", "vector", "sink", "fileDestination", "vectorDestination", "file"):
        return ""  # QGIS's own message names the layer or path
    return (
        f"{key} ({definition.description()}): {shown} is not accepted; see the help for its form."
    )


def _is_property(value: Any) -> bool:
    from qgis.core import QgsProperty

    return isinstance(value, QgsProperty)


def _number_problem(definition: QgsProcessingParameterDefinition, value: Any) -> str:
    key = definition.name()
    whole = (
        definition.type() == "number"
        and definition.dataType() == QgsProcessingParameterNumber.Integer
    )
    lo, hi = definition.minimum(), definition.maximum()
    positive = key in POSITIVE_LIMITS
    bounds = []
    if positive and lo <= 0:
        bounds.append("greater than 0")
    elif lo > -1e300:
        bounds.append(f"of at least {lo:g}" if hi > 1e300 else f"from {lo:g}")
    if hi < 1e300:
        bounds.append(f"to {hi:g}" if bounds and bounds[0].startswith("from") else f"up to {hi:g}")
    unit = f" ({POSITIVE_LIMITS[key]})" if positive else ""
    default = definition.defaultValue()
    like = f", like {_python_value(default):g}" if isinstance(default, (int, float)) else ""
    rule = f"{'a whole number' if whole else 'a number'} {' '.join(bounds)}".strip() + unit
    raw = _python_value(value)
    try:
        number = float(raw)
    except (TypeError, ValueError):
        number = math.nan
    ok = math.isfinite(number) and (not whole or number == int(number))
    ok = ok and number >= lo and number <= hi and not (positive and number <= 0)
    return "" if ok else f"{key} must be {rule}{like} (got {raw!r})."


def _list_problem(key: str, value: Any, *, strictly_positive: bool) -> str:
    """The message of :func:`parse_number_list` for a bad list of numbers, '' when it parses."""
    try:
        example = "5,10,15" if strictly_positive else "2,1"
        parse_number_list(
            str(_python_value(value)), key, positive=strictly_positive, example=example
        )
    except QgsProcessingException as err:
        return str(err)
    return ""


def help_path(algorithm_id: str) -> str:
    """Path of ``help/<algorithm_id>.html`` (or ``.md``), or '' when there is none."""
    for ext in (".html", ".md"):
        path = os.path.join(HELP_DIR, algorithm_id + ext)
        if os.path.exists(path):
            return path
    return ""


@functools.cache
def load_help(algorithm_id: str) -> str:
    """The help text shown in the algorithm dialog (HTML body of ``help/<id>.html``).

    QGIS 3.22 turns every newline of a help text into a line break, so the source's line
    wrapping is joined into single lines here (except inside ``<pre>``): paragraphs read as
    written, in every QGIS version.
    """
    path = help_path(algorithm_id)
    if not path:
        return ""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    lower = text.lower()
    start, end = lower.find("<body>"), lower.rfind("</body>")
    body = text[start + len("<body>") : end] if start >= 0 and end > start else text
    return reflow_html(body)


def reflow_html(html: str) -> str:
    """``html`` without line breaks in its source (each run of whitespace with a newline becomes
    one space), except inside ``<pre>`` blocks, which keep theirs."""
    parts = re.split(r"(<pre\b.*?</pre>)", html, flags=re.IGNORECASE | re.DOTALL)
    out = [p if i % 2 else re.sub(r"[ \t]*\r?\n\s*", " ", p) for i, p in enumerate(parts)]
    return "".join(out).strip()


# --------------------------------------------------------------------------------------------
# Parameter builders
# --------------------------------------------------------------------------------------------
def _advanced(param: QgsProcessingParameterDefinition) -> QgsProcessingParameterDefinition:
    param.setFlags(param.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
    return param


def network_parameter(
    *, optional: bool = False, description: str = "Road network"
) -> QgsProcessingParameterFile:
    """NETWORK: a GeoPackage from 'Build road network' or an OSM file (.osm/.pbf/.bz2/.graphml)."""
    return QgsProcessingParameterFile(
        NETWORK,
        description,
        QgsProcessingParameterFile.File,
        "",
        None,
        optional,
        NETWORK_FILE_FILTER,
    )


def max_snap_parameter() -> QgsProcessingParameterNumber:
    """MAX_SNAP: metres between a point and the nearest road before it counts as unsnapped."""
    return QgsProcessingParameterNumber(
        MAX_SNAP,
        "Maximum distance to the road network (metres)",
        QgsProcessingParameterNumber.Double,
        500.0,
        False,
        0.0,
    )


def seed_parameter() -> QgsProcessingParameterNumber:
    """SEED: random seed, so that the same inputs give the same plan."""
    return _advanced(
        QgsProcessingParameterNumber(
            SEED, "Random seed", QgsProcessingParameterNumber.Integer, 0, False, 0
        )
    )


def time_limit_parameter(default_s: float = 60.0) -> QgsProcessingParameterNumber:
    """TIME_LIMIT: solver time limit in seconds."""
    return _advanced(
        QgsProcessingParameterNumber(
            TIME_LIMIT,
            "Solver time limit (seconds)",
            QgsProcessingParameterNumber.Double,
            default_s,
            False,
            1.0,
        )
    )


def solver_parameter() -> QgsProcessingParameterEnum:
    """SOLVER: CBC or HiGHS (decode with :func:`enum_value`)."""
    return _advanced(
        QgsProcessingParameterEnum(SOLVER, "Solver", [label for _, label in SOLVERS], False, 0)
    )


def sink_parameter(
    key: str,
    description: str,
    layer_type: int = QgsProcessing.TypeVectorAnyGeometry,
    *,
    optional: bool = False,
) -> QgsProcessingParameterFeatureSink:
    """An output layer (``QgsProcessing.TypeVector`` for a table without geometry)."""
    return QgsProcessingParameterFeatureSink(key, description, layer_type, None, optional, True)


def enum_value(
    alg: QgsProcessingAlgorithm, parameters: dict, key: str, context, choices: Sequence[tuple]
) -> Any:
    """Decode an enum parameter into the engine value of its ``(value, label)`` pair."""
    index = alg.parameterAsEnum(parameters, key, context)
    if not 0 <= index < len(choices):
        raise QgsProcessingException(f"{key}: choose one of {', '.join(c[1] for c in choices)}.")
    return choices[index][0]


def optional_number(
    alg: QgsProcessingAlgorithm, parameters: dict, key: str, context
) -> float | None:
    """The value of an optional numeric parameter, or None when it is not set."""
    value = parameters.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, QVariant) and value.isNull():
        return None
    return alg.parameterAsDouble(parameters, key, context)


def field_names(alg: QgsProcessingAlgorithm, parameters: dict, key: str, context) -> list[str]:
    """The field names of a field parameter (parameterAsFields is deprecated from QGIS 3.32 on)."""
    if hasattr(alg, "parameterAsStrings"):
        return alg.parameterAsStrings(parameters, key, context)
    return alg.parameterAsFields(parameters, key, context)


def optional_field(alg: QgsProcessingAlgorithm, parameters: dict, key: str, context) -> str | None:
    """The field name of an optional field parameter, or None."""
    names = field_names(alg, parameters, key, context)
    return names[0] if names else None


def parse_number_list(
    text: str, key: str, *, positive: bool = True, example: str = "5,10,15"
) -> list[float]:
    """``"5,10,15"`` -> ``[5.0, 10.0, 15.0]``; the error names the parameter ``key``."""
    values = []
    for part in (text or "").replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            value = float(part)
        except ValueError:
            msg = (
                f"{key}: '{part}' is not a number; {key} must be "
                f"{'positive ' if positive else ''}numbers separated by commas, like {example}."
            )
            raise QgsProcessingException(msg) from None
        if not math.isfinite(value) or (positive and value <= 0):
            msg = f"{key}: every value must be a number greater than 0 (got '{part}'), like {example}."
            raise QgsProcessingException(msg)
        values.append(value)
    return values


def source_or_error(alg: QgsProcessingAlgorithm, parameters: dict, key: str, context):
    """``parameterAsSource`` that raises Processing's standard invalid-source error."""
    source = alg.parameterAsSource(parameters, key, context)
    if source is None:
        raise QgsProcessingException(alg.invalidSourceError(parameters, key))
    return source


# --------------------------------------------------------------------------------------------
# Engine call plumbing: log forwarding, progress, cancel, error mapping
# --------------------------------------------------------------------------------------------
class FeedbackLogHandler(logging.Handler):
    """Forward engine log records of this thread to Processing feedback.

    WARNING and above -> ``pushWarning``, INFO -> ``pushInfo``, DEBUG -> ``pushDebugInfo``.
    Only records emitted by the thread that created the handler are forwarded, so algorithms
    running in parallel (batch mode) do not see each other's messages.
    """

    def __init__(self, feedback: QgsProcessingFeedback) -> None:
        super().__init__(logging.DEBUG)
        self.feedback = feedback
        self.thread_id = threading.get_ident()
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self.thread_id:
            return
        try:
            text = self.format(record)
            if record.levelno >= logging.WARNING:
                self.feedback.pushWarning(text)
            elif record.levelno >= logging.INFO:
                self.feedback.pushInfo(text)
            else:
                self.feedback.pushDebugInfo(text)
        except Exception:  # logging must never break the run
            self.handleError(record)


@contextmanager
def forward_engine_log(feedback: QgsProcessingFeedback) -> Iterator[FeedbackLogHandler]:
    """Attach a :class:`FeedbackLogHandler` to the engine's package logger for the block."""
    logger = logging.getLogger(engine_package.__name__)
    handler = FeedbackLogHandler(feedback)
    old_level = logger.level
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def engine_callbacks(
    feedback: QgsProcessingFeedback, *, root: QgsProcessingFeedback | None = None
) -> tuple[Callable[..., None], Callable[[], bool]]:
    """``(progress(fraction, message), is_cancelled())`` for the engine, built from ``feedback``.

    With a multi-step ``feedback``, pass the algorithm's own feedback as ``root``: a cancel that
    happened before the multi-step feedback was created is only visible there.
    """
    last = {"message": None}

    def progress(fraction: float, message: str = "") -> None:
        feedback.setProgress(100.0 * min(1.0, max(0.0, float(fraction))))
        if message and message != last["message"]:
            last["message"] = message
            feedback.setProgressText(message)

    def is_cancelled() -> bool:
        return feedback.isCanceled() or (root is not None and root.isCanceled())

    return progress, is_cancelled


def step_feedback(feedback: QgsProcessingFeedback, steps: int) -> QgsProcessingMultiStepFeedback:
    """A multi-step feedback; call ``setCurrentStep(i)`` and build callbacks from it per step."""
    return QgsProcessingMultiStepFeedback(steps, feedback)


def network_steps(
    feedback: QgsProcessingFeedback, network_path: str | None, steps: int = 3
) -> tuple[QgsProcessingMultiStepFeedback, Callable[..., None], Callable[[], bool], Any]:
    """``(steps, progress, is_cancelled, network)`` for a run whose first step loads NETWORK.

    The network is None without ``network_path``; on return ``steps`` is at step 1.
    """
    from ..territory_planner_plugin import network as road_network

    multi = step_feedback(feedback, steps)
    progress, is_cancelled = engine_callbacks(multi, root=feedback)
    net = None
    if network_path:
        net = road_network.load_network(network_path, progress=progress, is_cancelled=is_cancelled)
    multi.setCurrentStep(1)
    return multi, progress, is_cancelled, net


def check_cancelled(feedback: QgsProcessingFeedback) -> None:
    """Raise the engine's ``Cancelled`` when the user pressed Cancel (caught by engine_run)."""
    if feedback.isCanceled():
        msg = "Cancelled by the user."
        raise Cancelled(msg)


def engine_run(process: Callable) -> Callable:
    """Decorate ``processAlgorithm``: forward engine logs, map engine errors, handle Cancel.

    ``TerritoryPlannerError`` -> ``QgsProcessingException(str(err))``; ``Cancelled`` -> a message
    and an empty result. Outputs are all or nothing (``outputs.guard_outputs``): their paths are
    checked before any work, and a failed or cancelled run removes what it wrote and puts back
    the files it replaced. Any other exception propagates with its traceback.
    """
    from .outputs import guard_outputs

    @functools.wraps(process)
    def wrapper(self, parameters, context, feedback):
        if feedback is None:
            feedback = QgsProcessingFeedback()
        quiet_third_party_warnings()  # again: something may have reset the filters since import
        with forward_engine_log(feedback):
            try:
                with guard_outputs(self, parameters, context):
                    return process(self, parameters, context, feedback)
            except Cancelled:
                feedback.pushInfo("Cancelled: no output was written.")
                return {}
            except TerritoryPlannerError as err:
                raise QgsProcessingException(str(err)) from None

    return wrapper


# --------------------------------------------------------------------------------------------
# Layers -> GeoDataFrames
# --------------------------------------------------------------------------------------------
def crs_to_pyproj_string(crs: QgsCoordinateReferenceSystem) -> str | None:
    """A pyproj-readable string for a QGIS CRS ('EPSG:xxxx' when possible), None when invalid
    or undefined (a GeoPackage layer written without a CRS has "Undefined geographic SRS" or
    "Undefined Cartesian SRS": no CRS at all)."""
    if crs is None or not crs.isValid():
        return None
    if "undefined" in (crs.description() or "").lower() and not crs.authid():
        return None
    authid = crs.authid()
    if authid and authid.upper().startswith("EPSG:"):
        return authid
    return crs.toWkt(QgsCoordinateReferenceSystem.WKT_PREFERRED) or crs.toProj()


def _authority(crs: Any) -> tuple[str | None, str]:
    """``("EPSG:3067" or None, WKT)`` for anything pyproj understands."""
    import pyproj

    pcrs = pyproj.CRS.from_user_input(crs)
    auth = pcrs.to_authority()
    return (f"{auth[0]}:{auth[1]}" if auth else None), pcrs.to_wkt()


def qgis_crs(crs: Any) -> QgsCoordinateReferenceSystem:
    """A QGIS CRS from anything pyproj understands (a GeoDataFrame's ``crs``, 'EPSG:3067', WKT)."""
    if crs is None:
        return QgsCoordinateReferenceSystem()
    try:
        authid, wkt = _authority(crs)
    except Exception:  # not a CRS pyproj knows: let QGIS try
        return QgsCoordinateReferenceSystem(str(crs))
    result = QgsCoordinateReferenceSystem(authid) if authid else QgsCoordinateReferenceSystem()
    return result if result.isValid() else QgsCoordinateReferenceSystem.fromWkt(wkt)


def _python_value(value: Any) -> Any:
    """QVariant NULL -> None, QDate/QDateTime/QTime -> datetime objects, others unchanged."""
    if value is None:
        return None
    if isinstance(value, QVariant):
        return None if value.isNull() else value.value()
    if isinstance(value, QDateTime):
        return value.toPyDateTime() if value.isValid() else None
    if isinstance(value, QDate):
        return value.toPyDate() if value.isValid() else None
    if isinstance(value, QTime):
        return value.toPyTime() if value.isValid() else None
    return value


_INT_TYPES = (QVariant.Int, QVariant.LongLong, QVariant.UInt, QVariant.ULongLong)


def _column(field: QgsField, values: list) -> pd.Series:
    """A pandas column typed from the QGIS field: ints stay int64 (float64 when NULLs exist)."""
    kind = field.type()
    if kind in _INT_TYPES:
        if any(v is None for v in values):
            return pd.Series([np.nan if v is None else float(v) for v in values], dtype="float64")
        return pd.Series(values, dtype="int64")
    if kind == QVariant.Double:
        return pd.Series([np.nan if v is None else float(v) for v in values], dtype="float64")
    if kind == QVariant.Bool and not any(v is None for v in values):
        return pd.Series(values, dtype="bool")
    return pd.Series(values, dtype="object")


def source_to_gdf(
    source,
    *,
    feedback: QgsProcessingFeedback,
    name: str,
    target_crs: Any = None,
    points: bool = False,
):
    """Read every feature of a ``QgsProcessingFeatureSource`` into a GeoDataFrame.

    Keeps all fields plus ``fid`` (the feature id, when the layer has no ``fid`` field), in the
    source CRS; with ``target_crs`` the frame is reprojected and the reprojection is logged.
    ``target_crs=PROJECTED`` reprojects a longitude/latitude layer to its local UTM zone (metres).
    A source without a valid CRS is taken as EPSG:4326 (with a warning) only when every
    coordinate is a possible longitude/latitude, otherwise refused with the fix; longitude/latitude
    outside -180..180 / -90..90 is refused and points at exactly 0,0 are warned about (ids named).
    ``points=True`` turns multi-points into single points (their centroid, with a warning).
    """
    import geopandas as gpd
    import shapely

    fields = source.fields()
    names = fields.names()
    columns: dict[str, list] = {n: [] for n in names}
    fids, wkbs = [], []
    total = max(1, source.featureCount())
    request = QgsFeatureRequest()
    for i, feature in enumerate(source.getFeatures(request)):
        if i % 1000 == 0 and feedback.isCanceled():
            msg = "Cancelled by the user."
            raise Cancelled(msg)
        fids.append(int(feature.id()))
        for fname, value in zip(names, feature.attributes()):
            columns[fname].append(_python_value(value))
        geom = feature.geometry()
        wkbs.append(bytes(geom.asWkb()) if geom is not None and not geom.isEmpty() else None)
        if i % 5000 == 0:
            feedback.setProgress(min(99.0, 100.0 * i / total))
    data = {n: _column(fields.field(n), columns[n]) for n in names}
    if "fid" not in data:
        data["fid"] = pd.Series(fids, dtype="int64")
    geometry = shapely.from_wkb(np.array(wkbs, dtype=object))
    no_geometry = bool(len(geometry)) and bool(shapely.is_missing(geometry).all())
    if no_geometry and (points or target_crs is not None):  # the algorithm needs places
        msg = (
            f"{name}: no feature has a geometry (a table, e.g. a CSV without coordinates). Load "
            "it with its coordinates (Layer > Add Layer > Add Delimited Text Layer, with the X "
            "and Y fields and their CRS) or geocode it, then run again."
        )
        raise QgsProcessingException(msg)
    crs = crs_to_pyproj_string(source.sourceCrs())
    frame = pd.DataFrame(data)
    if crs is None:
        crs = "EPSG:4326" if no_geometry else _assumed_crs(geometry, name=name, feedback=feedback)
    gdf = gpd.GeoDataFrame(frame, geometry=geometry, crs=crs)
    if gdf.crs is not None and gdf.crs.is_geographic:
        _check_lon_lat(gdf, name=name, feedback=feedback)
    if points:
        gdf = _single_points(gdf, feedback=feedback, name=name)
    if isinstance(target_crs, str) and target_crs == PROJECTED:
        target_crs = gdf.estimate_utm_crs() if gdf.crs.is_geographic and len(gdf) else None
    if target_crs is not None and gdf.crs is not None and not gdf.crs.equals(target_crs):
        feedback.pushInfo(
            f"Reprojected {name} from {_crs_label(gdf.crs)} to {_crs_label(target_crs)}."
        )
        gdf = gdf.to_crs(target_crs)
    return gdf


def _record_labels(frame, rows, limit: int = 10) -> str:
    """'id' values (or feature ids) of ``rows`` for a message, at most ``limit``."""
    col = next((c for c in ("id", "fid") if c in frame.columns), None)
    labels = [str(v) for v in (frame[col].to_numpy()[rows] if col else rows)]
    more = f" and {len(labels) - limit} more" if len(labels) > limit else ""
    return ", ".join(labels[:limit]) + more


def _assumed_crs(geometry, *, name: str, feedback: QgsProcessingFeedback) -> str:
    """EPSG:4326 for a layer without a CRS whose coordinates are all longitude/latitude (warned);
    otherwise a refusal that says how to set the CRS."""
    import shapely

    xy = shapely.get_coordinates(geometry[~shapely.is_missing(geometry)])
    if not len(xy):  # nothing to place: an empty layer
        return "EPSG:4326"
    if (np.abs(xy[:, 0]) <= 180).all() and (np.abs(xy[:, 1]) <= 90).all():
        feedback.pushWarning(
            f"{name} has no CRS; its coordinates look like longitude/latitude, so EPSG:4326 is "
            "assumed. Set the layer's CRS (Layer Properties > Source) if that is wrong."
        )
        return "EPSG:4326"
    msg = (
        (
            f"{name}: the layer has no CRS and its coordinates are not longitude/latitude (e.g. "
            f"{xy[0, 0]:.0f}, {xy[0, 1]:.0f}), so distances cannot be known. Set its CRS in QGIS "
            "(Layer Properties > Source, or Vector > Data Management Tools > Assign Projection) "
            "and run again."
        )
        if len(xy)
        else f"{name}: the layer has no CRS and no geometries; set its CRS and geometries."
    )
    raise QgsProcessingException(msg)


def _check_lon_lat(gdf, *, name: str, feedback: QgsProcessingFeedback) -> None:
    """Refuse longitude/latitude outside -180..180 / -90..90; warn about points at 0,0."""
    import shapely

    geoms = np.asarray(gdf.geometry.array)
    present = ~shapely.is_missing(geoms) & ~shapely.is_empty(geoms)
    if not present.any():
        return
    bounds = np.full((len(geoms), 4), np.nan)
    bounds[present] = shapely.bounds(geoms[present])
    with np.errstate(invalid="ignore"):
        bad = present & (
            (np.abs(bounds[:, [0, 2]]) > 180).any(1) | (np.abs(bounds[:, [1, 3]]) > 90).any(1)
        )
        zero = present & (np.abs(bounds) < 1e-12).all(1)
    if bad.any():
        msg = (
            f"{name}: {int(bad.sum())} feature(s) have impossible longitude/latitude (outside "
            f"-180..180 / -90..90): {_record_labels(gdf, np.flatnonzero(bad))}. Fix their "
            "coordinates, or set the layer's real CRS if it is not longitude/latitude."
        )
        raise QgsProcessingException(msg)
    if zero.any():
        feedback.pushWarning(
            f"{name}: {int(zero.sum())} feature(s) lie at exactly 0,0 (longitude/latitude), "
            f"usually a failed geocode: {_record_labels(gdf, np.flatnonzero(zero))}."
        )


def _crs_label(crs: Any) -> str:
    try:
        return _authority(crs)[0] or getattr(crs, "name", str(crs))
    except Exception:  # only a label for the log
        return str(crs)


def _single_points(gdf, *, feedback: QgsProcessingFeedback, name: str):
    """Multi-points -> points (single part as is, several parts -> centroid, with a warning)."""
    import shapely

    geoms = gdf.geometry.array
    kinds = shapely.get_type_id(np.asarray(geoms))
    multi = kinds == 4
    if not multi.any():
        return gdf
    out = gdf.copy()
    parts = shapely.get_num_geometries(np.asarray(geoms))
    several = multi & (parts > 1)
    if several.any():
        feedback.pushWarning(
            f"{name}: {int(several.sum())} multi-point feature(s) have several points; "
            "using the centroid of each."
        )
    values = np.asarray(geoms).copy()
    values[multi & ~several] = shapely.get_geometry(values[multi & ~several], 0)
    values[several] = shapely.centroid(values[several])
    out.geometry = values
    return out.set_crs(gdf.crs, allow_override=True)


# --------------------------------------------------------------------------------------------
# GeoDataFrames -> sinks
# --------------------------------------------------------------------------------------------
if Qgis.QGIS_VERSION_INT >= 33800:  # QgsField(name, QVariant.Type) is deprecated from QGIS 3.38 on
    from qgis.PyQt.QtCore import QMetaType

    _FIELD_TYPES = {
        "Bool": QMetaType.Bool, "LongLong": QMetaType.LongLong, "Double": QMetaType.Double,
        "DateTime": QMetaType.QDateTime, "Date": QMetaType.QDate, "String": QMetaType.QString,
    }  # fmt: skip
else:
    _FIELD_TYPES = {
        "Bool": QVariant.Bool, "LongLong": QVariant.LongLong, "Double": QVariant.Double,
        "DateTime": QVariant.DateTime, "Date": QVariant.Date, "String": QVariant.String,
    }  # fmt: skip


def _qgs_field(name: str, series: pd.Series) -> QgsField:
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return QgsField(name, _FIELD_TYPES["Bool"])
    if pd.api.types.is_integer_dtype(dtype):
        return QgsField(name, _FIELD_TYPES["LongLong"])
    if pd.api.types.is_float_dtype(dtype):
        return QgsField(name, _FIELD_TYPES["Double"])
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return QgsField(name, _FIELD_TYPES["DateTime"])
    sample = [v for v in series if not _is_missing(v)]
    if sample and all(isinstance(v, (bool, np.bool_)) for v in sample):
        return QgsField(name, _FIELD_TYPES["Bool"])
    if sample and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in sample):
        return QgsField(name, _FIELD_TYPES["LongLong"])
    if sample and all(isinstance(v, (float, int, np.number)) for v in sample):
        return QgsField(name, _FIELD_TYPES["Double"])
    if sample and all(isinstance(v, dt.datetime) for v in sample):
        return QgsField(name, _FIELD_TYPES["DateTime"])
    if sample and all(isinstance(v, dt.date) for v in sample):
        return QgsField(name, _FIELD_TYPES["Date"])
    return QgsField(name, _FIELD_TYPES["String"])


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    try:
        return bool(isinstance(value, float) and math.isnan(value))
    except TypeError:
        return False


def _qgs_value(value: Any, field: QgsField) -> Any:
    if _is_missing(value) or (isinstance(value, np.floating) and np.isnan(value)):
        return None
    if isinstance(value, np.generic):
        value = value.item()
    kind = field.type()
    if kind == QVariant.String and not isinstance(value, str):
        return str(value)
    if kind == QVariant.DateTime and isinstance(value, (pd.Timestamp, dt.datetime)):
        return QDateTime(pd.Timestamp(value).to_pydatetime())
    if kind == QVariant.Date and isinstance(value, dt.date):
        return QDate(value)
    return value


def _wkb_type(geoms) -> int:
    """The layer geometry type (multi-part for lines and polygons) of a GeoSeries."""
    kinds = {g.geom_type for g in geoms if g is not None and not g.is_empty}
    if not kinds:
        return QgsWkbTypes.Point if len(geoms) == 0 else QgsWkbTypes.Unknown
    if kinds <= {"Point"}:
        return QgsWkbTypes.Point
    if kinds <= {"Point", "MultiPoint"}:
        return QgsWkbTypes.MultiPoint
    if kinds <= {"LineString", "MultiLineString", "LinearRing"}:
        return QgsWkbTypes.MultiLineString
    if kinds <= {"Polygon", "MultiPolygon"}:
        return QgsWkbTypes.MultiPolygon
    return QgsWkbTypes.Unknown


def frame_fields(frame: pd.DataFrame, *, drop: Sequence[str] = ("fid",)) -> QgsFields:
    """QgsFields typed from the frame's columns (geometry and ``drop`` columns left out)."""
    geometry_name = getattr(frame, "_geometry_column_name", None)
    dropped = {name.lower() for name in drop}
    fields = QgsFields()
    for column in frame.columns:
        if column == geometry_name or str(column).lower() in dropped:
            continue
        fields.append(_qgs_field(str(column), frame[column]))
    return fields


def write_sink(
    alg: QgsProcessingAlgorithm,
    parameters: dict,
    key: str,
    context,
    frame: pd.DataFrame,
    *,
    feedback: QgsProcessingFeedback,
    geometry: bool = True,
    drop: Sequence[str] = ("fid",),
) -> str | None:
    """Create the sink ``key`` and write every row of ``frame``; returns its destination id.

    A GeoDataFrame keeps its CRS and geometry (lines/polygons promoted to multi-part); a plain
    DataFrame or ``geometry=False`` gives a table without geometry. NaN/None -> NULL.
    Returns None when the (optional) output was skipped.
    """
    import shapely

    geometry_name = getattr(frame, "_geometry_column_name", None) if geometry else None
    has_geometry = geometry_name is not None and geometry_name in frame.columns
    fields = frame_fields(frame, drop=drop)
    if has_geometry:
        geoms = frame.geometry.array
        wkb_type, crs = _wkb_type(geoms), qgis_crs(frame.crs)
    else:
        wkb_type, crs = QgsWkbTypes.NoGeometry, QgsCoordinateReferenceSystem()
    sink, dest_id = alg.parameterAsSink(parameters, key, context, fields, wkb_type, crs)
    if sink is None:
        if parameters.get(key) is None:
            return None
        raise QgsProcessingException(alg.invalidSinkError(parameters, key))
    names = fields.names()
    field_list = [fields.field(n) for n in names]
    columns = [frame[n].tolist() for n in names]
    wkbs = shapely.to_wkb(np.asarray(geoms)) if has_geometry else None
    multi = QgsWkbTypes.isMultiType(wkb_type)
    features = []
    for row in range(len(frame)):
        feature = QgsFeature(fields)
        feature.setAttributes([_qgs_value(col[row], f) for col, f in zip(columns, field_list)])
        if has_geometry and wkbs[row] is not None:
            qgeom = QgsGeometry()
            qgeom.fromWkb(wkbs[row])
            if multi and not qgeom.isMultipart():
                qgeom.convertToMultiType()
            feature.setGeometry(qgeom)
        features.append(feature)
    if not sink.addFeatures(features, QgsFeatureSink.FastInsert):
        error = sink.lastError() if hasattr(sink, "lastError") else ""
        raise QgsProcessingException(f"Could not write the output {key}: {error}".strip())
    sink.flushBuffer()
    del sink  # release the writer now (ENV-NOTES #8: a lingering sink leaves an empty GeoPackage)
    feedback.pushInfo(f"{key}: {len(features)} feature(s) written.")
    return dest_id


def attach_style(
    context, dest_id: str | None, kind: str, field: str | None = None, *, properties=None
) -> None:
    """Style the written output ``dest_id`` as ``kind`` (see ``styles.KINDS``), now and on load.

    Call it right after the output is written. A file output gets its style stored with it
    (GeoPackage default style and a ``.qml``), so it opens styled later whichever way it was
    made (dialog, ``qgis_process``, batch, model); a layer that Processing loads when the run
    finishes is also styled then and put in the "Territory Planner" group. ``properties``
    (a plan's settings: tolerance_pct, balance_fields, ...) are stored with the style, where
    the Territory editor reads them. Never fails a run.
    """
    if not dest_id:
        return
    try:
        from . import styles
    except ImportError:
        return
    try:
        styles.save_style_with_data(dest_id, kind, field, properties=properties)
        styles.attach_style(context, dest_id, kind, field, properties)
    except Exception as err:  # styling must never fail a run
        LOG.warning("Could not style %s: %s", dest_id, err)


# --------------------------------------------------------------------------------------------
# Run manifests (reproducible runs)
# --------------------------------------------------------------------------------------------
def add_manifest_parameters(alg: QgsProcessingAlgorithm) -> None:
    """Add MANIFEST (optional, advanced) and OUTPUT_MANIFEST (optional JSON file) to ``alg``.

    Call it once at the end of ``initAlgorithm``: ``add_manifest_parameters(self)``. Then call
    :func:`start_run_manifest` after the input layers are converted (before the engine) and
    :func:`write_run_manifest` after the outputs are written; see their docstrings.
    """
    manifest = QgsProcessingParameterFile(
        MANIFEST,
        "Check against a run manifest (reproduce a recorded run)",
        QgsProcessingParameterFile.File,
        "json",
        None,
        True,
        "JSON (*.json)",
    )
    alg.addParameter(_advanced(manifest))
    alg.addParameter(
        QgsProcessingParameterFileDestination(
            OUTPUT_MANIFEST, "Run manifest", "JSON (*.json)", None, True, False
        )
    )


_PASSWORD = re.compile(r"(password\s*=\s*)('[^']*'|\S+)", re.IGNORECASE)


def _absolute_source(source: str) -> str:
    """A layer source or file path with its file part made absolute (passwords redacted)."""
    path, sep, rest = source.partition("|")
    if path and not os.path.isabs(path) and os.path.exists(path):
        path = os.path.abspath(path)
    return _PASSWORD.sub(r"\1'***'", path + sep + rest)


def _unset(value: Any) -> bool:
    if value is None or (isinstance(value, str) and not value.strip()):
        return True
    return isinstance(value, QVariant) and value.isNull()


def manifest_parameters(
    alg: QgsProcessingAlgorithm, parameters: dict, context, feedback=None
) -> tuple[dict, dict]:
    """``(inputs, destinations)``: every parameter as ``qgis_process`` takes it, JSON-safe.

    Layers become their sources (``/abs/path.gpkg|layername=x``), enums their index, fields a
    name (a list when several are allowed), unset optional values None. MANIFEST is left out;
    destination parameters (outputs) are returned separately.
    """
    values: dict[str, Any] = {}
    outputs: dict[str, Any] = {}
    for definition in alg.parameterDefinitions():
        key, kind = definition.name(), definition.type()
        raw = parameters.get(key)
        if key == MANIFEST:
            continue
        if definition.isDestination():
            if isinstance(raw, QgsProcessingOutputLayerDefinition):
                raw = raw.sink.staticValue()
            outputs[key] = None if _unset(raw) else str(raw)
            continue
        if kind in ("source", "vector", "raster", "layer", "mesh"):
            if isinstance(raw, QgsProcessingFeatureSourceDefinition):
                if raw.selectedFeaturesOnly and feedback is not None:
                    feedback.pushWarning(
                        f"{key} uses selected features only: the manifest records the layer "
                        "source, so a rerun outside QGIS reads every feature (the input hash "
                        "tells)."
                    )
                raw = raw.source.staticValue()  # parameterAsLayer does not unwrap it (3.22)
            layer = None if _unset(raw) else alg.parameterAsLayer({key: raw}, key, context)
            values[key] = _absolute_source(layer.source()) if layer is not None else None
        elif kind == "multilayer":
            layers = alg.parameterAsLayerList(parameters, key, context)
            values[key] = [_absolute_source(layer.source()) for layer in layers]
        elif kind == "field":
            names = field_names(alg, parameters, key, context)
            values[key] = (
                list(names) if definition.allowMultiple() else (names[0] if names else None)
            )
        elif kind == "enum":
            if definition.allowMultiple():
                values[key] = list(alg.parameterAsEnums(parameters, key, context))
            else:
                values[key] = alg.parameterAsEnum(parameters, key, context)
        elif kind in ("number", "distance", "scale", "duration"):
            if _unset(raw) and definition.defaultValue() is None:
                values[key] = None
            elif kind == "number" and definition.dataType() == QgsProcessingParameterNumber.Integer:
                values[key] = alg.parameterAsInt(parameters, key, context)
            else:
                values[key] = alg.parameterAsDouble(parameters, key, context)
        elif kind == "boolean":
            values[key] = alg.parameterAsBool(parameters, key, context)
        elif kind == "file":
            path = alg.parameterAsFile(parameters, key, context)
            values[key] = _absolute_source(path) if path else None
        elif kind in ("string", "expression"):
            values[key] = alg.parameterAsString(parameters, key, context)
        else:
            values[key] = None if _unset(raw) else run_manifest.json_safe(_python_value(raw))
    return run_manifest.json_safe(values), outputs


@dataclass
class RunManifest:
    """What :func:`start_run_manifest` found; :func:`write_run_manifest` finishes with it."""

    algorithm: str
    active: bool = False
    parameters: dict = field(default_factory=dict)
    outputs: dict = field(default_factory=dict)
    input_hashes: dict = field(default_factory=dict)
    reference: dict | None = None
    reference_path: str = ""
    output_path: str = ""
    differing: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)


def start_run_manifest(
    alg: QgsProcessingAlgorithm,
    parameters: dict,
    context,
    feedback: QgsProcessingFeedback,
    *,
    frames: Mapping[str, Any],
    files: Mapping[str, str | None] | None = None,
) -> RunManifest:
    """Hash the inputs and, with MANIFEST, check them against the recorded run; before solving.

    ``frames``: parameter key -> the GeoDataFrame the engine will receive (None when not given),
    e.g. ``{"ACCOUNTS": accounts, "REPS": reps}``; ``files``: key -> path of a file input, e.g.
    ``{"NETWORK": network_path}``. With MANIFEST: a manifest of another algorithm or an input
    whose hash differs raises (naming the inputs); each other parameter that differs from the
    manifest is a warning. Nothing is hashed when neither MANIFEST nor OUTPUT_MANIFEST is set.

    Usage (one line, after converting the layers)::

        run = start_run_manifest(self, parameters, context, feedback,
                                 frames={"ACCOUNTS": accounts, "REPS": reps},
                                 files={"NETWORK": network_path})
    """
    algorithm = alg.id() if ":" in (alg.id() or "") else f"territory_planner:{alg.name()}"
    reference_path = alg.parameterAsFile(parameters, MANIFEST, context) or ""
    output_path = alg.parameterAsFileOutput(parameters, OUTPUT_MANIFEST, context) or ""
    if _unset(parameters.get(OUTPUT_MANIFEST)):
        output_path = ""
    run = RunManifest(algorithm, reference_path=reference_path, output_path=output_path)
    run.active = bool(reference_path or output_path)
    if not run.active:
        return run
    run.parameters, run.outputs = manifest_parameters(alg, parameters, context, feedback)
    for key, frame in frames.items():
        run.input_hashes[key] = None if frame is None else run_manifest.frame_hash(frame)
    for key, path in (files or {}).items():
        run.input_hashes[key] = run_manifest.file_hash(path) if path else None
    if not reference_path:
        return run
    reference = run_manifest.read_manifest(reference_path)
    if reference.get("algorithm") != algorithm:
        msg = (
            f"MANIFEST: {reference_path} records a run of {reference.get('algorithm')}, not "
            f"{algorithm}. Give a manifest written by this algorithm."
        )
        raise QgsProcessingException(msg)
    changed = run_manifest.check_inputs(reference, run.input_hashes)
    if changed:
        msg = (
            f"MANIFEST: input {', '.join(changed)} differs from the run recorded in "
            f"{reference_path} ({reference.get('created', 'unknown date')}): its contents, "
            "rows or CRS changed. Use the same layers or run without MANIFEST."
        )
        raise QgsProcessingException(msg)
    run.reference = reference
    run.differing = run_manifest.differing_parameters(
        reference, run.parameters, skip=set(frames) | set(files or {})
    )
    for key, old, new in run.differing:
        feedback.pushWarning(
            f"MANIFEST: {key} is {new!r} here but {old!r} in the manifest; the plan may differ."
        )
    feedback.pushInfo(f"MANIFEST: inputs match {reference_path}; checking the plan after the run.")
    return run


def write_run_manifest(
    run: RunManifest,
    plan: Any,
    results: dict,
    feedback: QgsProcessingFeedback,
    *,
    id_field: str,
    territory_field: str = "territory_id",
) -> dict:
    """Write OUTPUT_MANIFEST and, with MANIFEST, check the plan reproduces the recorded one.

    Call it once after the outputs are written: ``write_run_manifest(run, plan, results,
    feedback, id_field=id_field)``. ``plan`` needs ``accounts`` (with ``id_field`` and
    ``territory_field``) and may have ``objective``, ``lower_bound``, ``gap_pct``,
    ``max_deviation_pct``, ``moved``, ``kpis`` and ``parameters``. Adds OUTPUT_MANIFEST (path
    or None) to ``results`` and returns it. When the plan differs from MANIFEST's it raises
    after writing the new manifest (the outputs hold the new plan).
    """
    results[OUTPUT_MANIFEST] = None
    if not run.active:
        return results
    digest = run_manifest.assignment_hash(plan.accounts, id_field, territory_field)
    figures = {
        name: getattr(plan, name, None)
        for name in ("objective", "lower_bound", "gap_pct", "max_deviation_pct", "moved", "kpis")
    }
    figures["assignment_hash"] = digest
    outputs = dict(run.outputs)
    for key in outputs:
        if isinstance(results.get(key), str):
            outputs[key] = results[key]
    if run.output_path:
        outputs[OUTPUT_MANIFEST] = run.output_path
    extra = {
        "versions": {"qgis": Qgis.QGIS_VERSION},
        "outputs": outputs,
        "engine_parameters": getattr(plan, "parameters", None) or {},
        **run.extra,
    }
    index = run.parameters.get(SOLVER)
    if isinstance(index, int) and 0 <= index < len(SOLVERS):
        extra.setdefault("solver", SOLVERS[index][0])
    manifest = run_manifest.build_manifest(
        run.algorithm, run.parameters, run.input_hashes, figures, extra
    )
    if run.reference_path:
        manifest["reproduces"] = run.reference_path
    if run.output_path:
        results[OUTPUT_MANIFEST] = run_manifest.write_manifest(run.output_path, manifest)
        feedback.pushInfo(f"Run manifest written to {run.output_path}.")
    if run.reference is None:
        return results
    old = run.reference.get("assignment_hash")
    if old == digest:
        feedback.pushInfo(
            f"Reproduced exactly: the plan equals the one recorded in {run.reference_path} "
            f"(assignment hash {digest[:16]})."
        )
        return results
    raise QgsProcessingException(_differs_message(run, manifest, old, digest))


def _differs_message(run: RunManifest, manifest: dict, old: Any, new: str) -> str:
    recorded = run.reference.get("results") or {}
    now = manifest["results"]
    reasons = []
    if run.differing:
        reasons.append("parameters differ: " + ", ".join(key for key, _, _ in run.differing))
    versions = {
        name: (value, manifest["versions"].get(name))
        for name, value in (run.reference.get("versions") or {}).items()
        if value != manifest["versions"].get(name)
    }
    if versions:
        reasons.append(
            "versions differ: "
            + ", ".join(f"{name} {a} -> {b}" for name, (a, b) in sorted(versions.items()))
        )
    if recorded.get("gap_pct") != now.get("gap_pct"):
        reasons.append(
            f"the gap changed ({recorded.get('gap_pct')}% -> {now.get('gap_pct')}%): a solver "
            "stopped by TIME_LIMIT keeps whatever it found by then, so raise TIME_LIMIT"
        )
    why = f" Possible causes: {'; '.join(reasons)}." if reasons else ""
    return (
        f"Plan differs from the manifest {run.reference_path}: assignment hash "
        f"{str(new)[:16]} instead of {str(old)[:16]} (objective {now.get('objective')} vs "
        f"{recorded.get('objective')}).{why} The new plan was written to the outputs"
        + (f" and its manifest to {run.output_path}." if run.output_path else ".")
    )
