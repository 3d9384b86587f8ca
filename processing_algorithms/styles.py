"""Styles of Territory Planner outputs: stored with the data, applied again when QGIS loads them.

``base.attach_style(context, dest_id, kind)`` is the one entry point for the wrappers: it calls
:func:`save_style_with_data` (right after the output is written, in every run: dialog,
``qgis_process``, batch, models) and :func:`attach_style` (the load-on-completion post-processor
that styles the loaded layer and puts it in the "Territory Planner" group in :data:`KIND_ORDER`).
Territory colours are the plan's ``colour`` field (``palette.COLOUR_FIELD``) when the layer has
one, otherwise ``palette.plan_colours``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping

from qgis.core import (
    QgsCategorizedSymbolRenderer,
    QgsGraduatedSymbolRenderer,
    QgsPalLayerSettings,
    QgsProcessingLayerPostProcessorInterface,
    QgsProject,
    QgsProviderRegistry,
    QgsRendererCategory,
    QgsRendererRange,
    QgsSimpleLineSymbolLayer,
    QgsSimpleMarkerSymbolLayerBase,
    QgsSingleSymbolRenderer,
    QgsSymbol,
    QgsTextFormat,
    QgsVectorLayer,
    QgsVectorLayerSimpleLabeling,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QColor

from ..territory_planner_plugin import palette

LOG = logging.getLogger(__name__)
GROUP_NAME = "Territory Planner"
DEFAULT_FIELDS = {
    "centres": "territory_id",
    "accounts": "territory_id",
    "territories": "territory_id",
    "units": "territory_id",
    "catchments": "band_min",
    "roads": None,
}
KINDS = tuple(DEFAULT_FIELDS)
# top to bottom in the group: centres, accounts, territories, units, catchments, roads
KIND_ORDER = KINDS
KIND_PROPERTY = "territory_planner/kind"  # layer custom property: the kind a layer was styled as
#: Prefix of the layer custom properties that carry a plan's settings (tolerance_pct,
#: balance_fields, lock_field, current_field) in its stored style, for the Territory editor.
PLAN_PROPERTY = "territory_planner/plan/"
POLYGON_ALPHA = 110  # territory fill (0-255): accounts of the same colour stay visible on it
# a plan of areas: the units carry the colour, their territories (drawn over them) a light tint
# with a bold outline and the labels, so each territory reads as one shape over its areas
UNIT_ALPHA = 80
OVER_UNITS_ALPHA = 55
BAND_EDGE_ALPHA = 70  # catchment inner edge strip (0-255); bands have no fill
STYLE_NAME = "Territory Planner"
# strong references: Processing does not own the Python object (sip), see QuickOSM
_KEEP: list[QgsProcessingLayerPostProcessorInterface] = []


def style_layer(layer: QgsVectorLayer, kind: str, field: str | None = None) -> bool:
    """Apply the Territory Planner style of ``kind`` to ``layer``; return False if not applicable."""
    if kind not in KINDS or not layer or not layer.isValid():
        return False
    if kind == "roads":
        _quiet_roads(layer)
        layer.setCustomProperty(KIND_PROPERTY, kind)
        return True
    field = field or DEFAULT_FIELDS.get(kind)
    if layer.fields().indexOf(field) < 0:
        return False
    idx = layer.fields().indexOf(field)
    values = sorted(
        (v for v in layer.uniqueValues(idx) if v is not None and str(v) != "NULL"), key=str
    )
    geom_type = layer.geometryType()
    layer.setCustomProperty(KIND_PROPERTY, kind)
    if kind == "catchments":
        _graduated_bands(layer, field, values, geom_type)
        return True
    colours = territory_colours(layer, field, values)
    # territories built from areas (their "units" count): drawn over the units layer
    over_units = kind == "territories" and layer.fields().indexOf("units") >= 0
    categories = []
    for value in values:
        symbol = QgsSymbol.defaultSymbol(geom_type)
        colour = QColor(colours[str(value)])
        if geom_type == QgsWkbTypes.PolygonGeometry:
            alpha, stroke, width = POLYGON_ALPHA, QColor(60, 60, 60), 0.4
            if kind == "units":
                alpha, stroke, width = UNIT_ALPHA, QColor(255, 255, 255, 200), 0.15
            elif over_units:
                alpha, stroke, width = OVER_UNITS_ALPHA, QColor(30, 30, 30), 0.9
            colour.setAlpha(alpha)
            symbol.setColor(colour)
            symbol.symbolLayer(0).setStrokeColor(stroke)
            symbol.symbolLayer(0).setStrokeWidth(width)
        elif geom_type == QgsWkbTypes.PointGeometry:
            symbol.setColor(colour)
            if kind == "centres":
                symbol.symbolLayer(0).setShape(QgsSimpleMarkerSymbolLayerBase.Star)
                symbol.setSize(5.0)
                symbol.symbolLayer(0).setStrokeColor(QColor("black"))
            else:
                symbol.setSize(2.2)
                symbol.symbolLayer(0).setStrokeColor(QColor(40, 40, 40))
                symbol.symbolLayer(0).setStrokeWidth(0.2)
        else:
            symbol.setColor(colour)
        categories.append(QgsRendererCategory(value, symbol, str(value)))
    layer.setRenderer(QgsCategorizedSymbolRenderer(field, categories))
    if kind in ("territories", "centres"):
        _labels(layer, field, kind)
    layer.triggerRepaint()
    return True


def territory_colours(layer: QgsVectorLayer, field: str, values: list) -> dict[str, str]:
    """``str(value)`` -> colour: the layer's ``colour`` field where it has one, else the palette.

    Territories without a stored colour get :func:`palette.plan_colours` colours (polygon
    neighbours apart), avoiding the stored ones.
    """
    stored: dict[str, str] = {}
    colour_idx = layer.fields().indexOf(palette.COLOUR_FIELD)
    if colour_idx >= 0:
        for feature in layer.getFeatures():
            key, colour = feature[field], feature[colour_idx]
            if key is not None and palette.is_colour(colour):
                stored.setdefault(str(key), str(colour).upper())
    keys = [str(v) for v in values]
    if all(k in stored for k in keys):
        return stored
    polygons = layer.geometryType() == QgsWkbTypes.PolygonGeometry
    adjacency = _adjacency(layer, field) if polygons else None
    return palette.plan_colours(keys, adjacency=adjacency, existing=stored)


def set_plan_properties(layer: QgsVectorLayer, properties: Mapping[str, object] | None) -> None:
    """Store a plan's settings on ``layer`` as custom properties (kept in its saved styles)."""
    for key, value in (properties or {}).items():
        if value is not None and value != "":
            layer.setCustomProperty(PLAN_PROPERTY + key, str(value))


def plan_properties(layer) -> dict[str, str]:
    """The plan settings stored on ``layer`` by :func:`set_plan_properties` ({} when none)."""
    if layer is None:
        return {}
    keys = [k for k in layer.customPropertyKeys() if k.startswith(PLAN_PROPERTY)]
    return {k[len(PLAN_PROPERTY) :]: str(layer.customProperty(k)) for k in keys}


def save_style_with_data(
    dest_id: str | None,
    kind: str,
    field: str | None = None,
    *,
    style: Callable[[QgsVectorLayer], bool] | None = None,
    properties: Mapping[str, object] | None = None,
) -> list[str]:
    """Style the written output ``dest_id`` and store the style with it; return what was written.

    A GeoPackage (or another database format) gets the style as its default style (table
    ``layer_styles``, loaded by QGIS whenever the layer is opened); every file output also
    gets a ``.qml`` beside it: ``<file>.qml``, or ``<file>_<layer>.qml`` for a layer of a
    file with several layers. Memory layers and non-file outputs are left alone (the
    post-processor styles them when they are loaded). ``style(layer) -> bool`` replaces
    :func:`style_layer` for outputs of another kind (e.g. checkaccounts). Safe in a worker
    thread: the layer opened here belongs to no project. Never raises (problems are logged).
    """
    path, layer_name = _file_and_layer(dest_id)
    if path is None or (style is None and kind not in KINDS):
        return []
    uri = path if not layer_name else f"{path}|layername={layer_name}"
    layer = QgsVectorLayer(uri, kind, "ogr")
    written: list[str] = []
    try:
        if not (style(layer) if style is not None else style_layer(layer, kind, field)):
            return []
        set_plan_properties(layer, properties)
        if layer.dataProvider().isSaveAndLoadStyleToDatabaseSupported():
            error = layer.saveStyleToDatabase(STYLE_NAME, f"Territory Planner {kind}", True, "")
            if error:
                LOG.warning("Could not store the style in %s: %s", path, error)
            else:
                written.append(uri)
        base = os.path.splitext(path)[0]
        single = not layer_name or layer_name == os.path.basename(base)
        qml = base + ".qml" if single else f"{base}_{layer_name}.qml"
        message, ok = layer.saveNamedStyle(qml)
        if ok:
            written.append(qml)
        else:
            LOG.warning("Could not write %s: %s", qml, message)
    except Exception as err:  # a style must never fail a run
        LOG.warning("Could not store the style of %s: %s", uri, err)
    finally:
        del layer  # release the file before QGIS loads it again
    return written


def _file_and_layer(dest_id: str | None) -> tuple[str | None, str | None]:
    """(file path, layer name or None) of a written output; (None, None) if not a file."""
    if not dest_id or not isinstance(dest_id, str):
        return None, None
    text = dest_id[4:] if dest_id.startswith("ogr:") else dest_id
    parts = QgsProviderRegistry.instance().decodeUri("ogr", text)
    path = parts.get("path") or ""
    if not path or not os.path.isfile(path):
        return None, None
    return path, parts.get("layerName") or None


def attach_style(
    context,
    dest_id: str | None,
    kind: str,
    field: str | None = None,
    properties: Mapping[str, object] | None = None,
) -> None:
    """Style ``dest_id`` when Processing loads it and put it in the "Territory Planner" group.

    Parameters: ``context`` (QgsProcessingContext), ``dest_id`` (the output's value as returned
    by ``parameterAsSink``/written path), ``kind`` one of :data:`KINDS` (others are ignored),
    ``field`` the category field (default territory_id; band_min for catchments). Safe to call
    from processAlgorithm (the styling itself runs later in the main thread).
    """
    if not dest_id or kind not in KINDS or not context.willLoadLayerOnCompletion(dest_id):
        return
    post = TerritoryStylePostProcessor(kind, field, properties)
    _KEEP.append(post)
    details = context.layerToLoadOnCompletionDetails(dest_id)
    details.setPostProcessor(post)
    if hasattr(details, "groupName"):  # QGIS >= 3.32
        details.groupName = GROUP_NAME
    if hasattr(details, "layerSortKey"):  # QGIS >= 3.32: load order (the group orders anyway)
        details.layerSortKey = KIND_ORDER.index(kind)


class TerritoryStylePostProcessor(QgsProcessingLayerPostProcessorInterface):
    """Styles a loaded output layer; NOT the algorithm class (runs in the main thread)."""

    def __init__(self, kind: str, field: str | None = None, properties=None) -> None:
        super().__init__()
        self.kind = kind
        self.field = field
        self.properties = dict(properties or {})

    def postProcessLayer(self, layer, context, feedback) -> None:
        if not isinstance(layer, QgsVectorLayer) or not style_layer(layer, self.kind, self.field):
            return
        set_plan_properties(layer, self.properties)
        project = (context.project() if context is not None else None) or QgsProject.instance()
        move_to_group(layer, project)


def move_to_group(layer, project) -> None:
    """Put ``layer`` in the "Territory Planner" group, ordered by :data:`KIND_ORDER`."""
    root = project.layerTreeRoot()
    node = root.findLayer(layer.id())
    if node is None:
        return
    group = root.findGroup(GROUP_NAME) or root.insertGroup(0, GROUP_NAME)
    rank = _rank(layer)
    children = group.children()
    position = len(children)
    for i, child in enumerate(children):
        other = child.layer() if child is not node and hasattr(child, "layer") else None
        if other is not None and _rank(other) > rank:
            position = i
            break
    parent = node.parent()
    # the clone first: a layer whose last tree node is removed is removed from the project
    group.insertChildNode(position, node.clone())
    parent.removeChildNode(node)


def _rank(layer) -> int:
    kind = layer.customProperty(KIND_PROPERTY) if layer is not None else None
    return KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)


def _adjacency(layer: QgsVectorLayer, field: str) -> dict:
    from shapely import wkb

    geoms: dict = {}
    for feature in layer.getFeatures():
        key = feature[field]
        if key is None or not feature.hasGeometry():
            continue
        key = str(key)
        g = wkb.loads(bytes(feature.geometry().asWkb()))
        geoms[key] = geoms[key].union(g) if key in geoms else g
    return palette.adjacency_from_geometries(geoms)


def _labels(layer: QgsVectorLayer, field: str, kind: str) -> None:
    names = layer.fields().names()
    totals = [n for n in names if n.endswith("_total") or n in ("n_accounts", "accounts")]
    expression = f'"{field}"'
    for name in totals[:2]:  # "revenue_potential_total" -> "revenue potential 3,606,779"
        label = name.removesuffix("_total").replace("_", " ")
        expression += f" || '\\n{label} ' || coalesce(format_number(\"{name}\", 0), '')"
    settings = QgsPalLayerSettings()
    settings.fieldName = expression
    settings.isExpression = True
    text = QgsTextFormat()
    text.setSize(9 if kind == "territories" else 8)
    buffer = text.buffer()
    buffer.setEnabled(True)
    buffer.setSize(0.8)
    settings.setFormat(text)
    layer.setLabeling(QgsVectorLayerSimpleLabeling(settings))
    layer.setLabelsEnabled(True)


def _graduated_bands(layer, field, values, geom_type) -> None:
    """Nested drive-time bands read as bands: each band is its outline with a soft inner edge.

    No band fills its inside, so many overlapping bands (several origins x several bands) never
    add up to an opaque block: the coloured outline and a translucent strip just inside it
    (short = blue, long = orange) show where each band ends.
    """
    bands = sorted(float(v) for v in values)
    ranges = []
    lower = 0.0
    for i, band in enumerate(bands):
        t = i / max(len(bands) - 1, 1)
        line = QColor.fromRgbF(0.0 + 0.84 * t, 0.45 + 0.1 * t, 0.7 * (1 - t))
        symbol = QgsSymbol.defaultSymbol(geom_type)
        if geom_type == QgsWkbTypes.PolygonGeometry:
            outline = symbol.symbolLayer(0)
            outline.setBrushStyle(Qt.NoBrush)
            outline.setStrokeColor(line)
            outline.setStrokeWidth(0.6)
            edge = QColor(line)
            edge.setAlpha(BAND_EDGE_ALPHA)
            strip = QgsSimpleLineSymbolLayer(edge, 3.0)
            strip.setDrawInsidePolygon(True)  # the strip lies inside the band only
            symbol.insertSymbolLayer(0, strip)
        else:
            symbol.setColor(line)
        ranges.append(QgsRendererRange(lower, band, symbol, f"≤ {band:g} min"))
        lower = band
    renderer = QgsGraduatedSymbolRenderer(field, ranges)
    layer.setRenderer(renderer)
    layer.setOpacity(1.0)
    layer.triggerRepaint()


def _quiet_roads(layer: QgsVectorLayer) -> None:
    """Thin grey lines for road edges, small faint grey dots for road nodes."""
    geom_type = layer.geometryType()
    symbol = QgsSymbol.defaultSymbol(geom_type)
    if symbol is None:
        return
    grey = QColor(150, 150, 150)
    if geom_type == QgsWkbTypes.LineGeometry:
        symbol.setColor(grey)
        symbol.setWidth(0.26)
    elif geom_type == QgsWkbTypes.PointGeometry:
        grey.setAlpha(140)
        symbol.setColor(grey)
        symbol.setSize(0.8)
        symbol.symbolLayer(0).setStrokeStyle(Qt.NoPen)
    else:
        grey.setAlpha(40)
        symbol.setColor(grey)
    layer.setRenderer(QgsSingleSymbolRenderer(symbol))
    layer.triggerRepaint()
