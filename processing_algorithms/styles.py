"""Styling of Territory Planner outputs when Processing loads them (main thread post-processor).

``attach_style(context, dest_id, kind, field=None)`` is the one entry point for the wrappers.
Colours come from the QGIS-free ``territory_planner_plugin.palette``.
"""

from __future__ import annotations

import logging
import os

from qgis.core import (
    Qgis,
    QgsCategorizedSymbolRenderer,
    QgsGraduatedSymbolRenderer,
    QgsPalLayerSettings,
    QgsProcessingLayerPostProcessorInterface,
    QgsProject,
    QgsRendererCategory,
    QgsRendererRange,
    QgsSimpleMarkerSymbolLayerBase,
    QgsSymbol,
    QgsTextFormat,
    QgsVectorLayer,
    QgsVectorLayerSimpleLabeling,
    QgsWkbTypes,
)
from qgis.PyQt.QtGui import QColor

from ..territory_planner_plugin import palette

LOG = logging.getLogger(__name__)
GROUP_NAME = "Territory Planner"
DEFAULT_FIELDS = {
    "territories": "territory_id",
    "accounts": "territory_id",
    "centres": "territory_id",
    "catchments": "band_min",
}
KINDS = tuple(DEFAULT_FIELDS)
# strong references: Processing does not own the Python object (sip), see QuickOSM
_KEEP: list[QgsProcessingLayerPostProcessorInterface] = []


def style_layer(layer: QgsVectorLayer, kind: str, field: str | None = None) -> bool:
    """Apply the Territory Planner style of ``kind`` to ``layer``; return False if not applicable."""
    field = field or DEFAULT_FIELDS.get(kind)
    if kind not in KINDS or not layer or not layer.isValid() or layer.fields().indexOf(field) < 0:
        return False
    idx = layer.fields().indexOf(field)
    values = sorted(
        (v for v in layer.uniqueValues(idx) if v is not None and str(v) != "NULL"), key=str
    )
    geom_type = layer.geometryType()
    if kind == "catchments":
        _graduated_bands(layer, field, values, geom_type)
        return True
    adjacency = _adjacency(layer, field) if geom_type == QgsWkbTypes.PolygonGeometry else None
    colours = palette.assign_colours(values, adjacency)
    categories = []
    for value in values:
        symbol = QgsSymbol.defaultSymbol(geom_type)
        colour = QColor(colours[value])
        if geom_type == QgsWkbTypes.PolygonGeometry:
            colour.setAlpha(150)
            symbol.setColor(colour)
            symbol.symbolLayer(0).setStrokeColor(QColor(60, 60, 60))
            symbol.symbolLayer(0).setStrokeWidth(0.4)
        elif geom_type == QgsWkbTypes.PointGeometry:
            symbol.setColor(colour)
            if kind == "centres":
                symbol.symbolLayer(0).setShape(QgsSimpleMarkerSymbolLayerBase.Star)
                symbol.setSize(5.0)
                symbol.symbolLayer(0).setStrokeColor(QColor("black"))
            else:
                symbol.setSize(2.2)
        else:
            symbol.setColor(colour)
        categories.append(QgsRendererCategory(value, symbol, str(value)))
    layer.setRenderer(QgsCategorizedSymbolRenderer(field, categories))
    if kind in ("territories", "centres"):
        _labels(layer, field, kind)
    layer.triggerRepaint()
    return True


def attach_style(context, dest_id: str | None, kind: str, field: str | None = None) -> None:
    """Style ``dest_id`` when Processing loads it, write a .qml next to file outputs, group it.

    Parameters: ``context`` (QgsProcessingContext), ``dest_id`` (the output's value as returned
    by ``parameterAsSink``/written path), ``kind`` one of "territories", "accounts", "centres",
    "catchments" (others are ignored), ``field`` the category field (default territory_id;
    band_min for catchments). Safe to call from processAlgorithm (the styling itself runs later
    in the main thread).
    """
    if not dest_id or kind not in KINDS or not context.willLoadLayerOnCompletion(dest_id):
        return
    post = TerritoryStylePostProcessor(kind, field)
    _KEEP.append(post)
    details = context.layerToLoadOnCompletionDetails(dest_id)
    details.setPostProcessor(post)
    if hasattr(details, "groupName"):  # QGIS >= 3.32
        details.groupName = GROUP_NAME


class TerritoryStylePostProcessor(QgsProcessingLayerPostProcessorInterface):
    """Styles a loaded output layer; NOT the algorithm class (runs in the main thread)."""

    def __init__(self, kind: str, field: str | None = None) -> None:
        super().__init__()
        self.kind = kind
        self.field = field

    def postProcessLayer(self, layer, context, feedback) -> None:
        if not isinstance(layer, QgsVectorLayer) or not style_layer(layer, self.kind, self.field):
            return
        path = layer.source().split("|")[0]
        if os.path.isfile(path):
            qml = os.path.splitext(path)[0] + ".qml"
            try:
                layer.saveNamedStyle(qml)
            except Exception as err:
                LOG.warning("Could not write %s: %s", qml, err)
        if Qgis.QGIS_VERSION_INT < 33200:
            _move_to_group(layer, context.project() or QgsProject.instance())


def _move_to_group(layer, project) -> None:
    root = project.layerTreeRoot()
    node = root.findLayer(layer.id())
    if node is None:
        return
    group = root.findGroup(GROUP_NAME) or root.insertGroup(0, GROUP_NAME)
    parent = node.parent()
    group.addChildNode(node.clone())
    parent.removeChildNode(node)


def _adjacency(layer: QgsVectorLayer, field: str) -> dict:
    from shapely import wkb

    geoms: dict = {}
    for feature in layer.getFeatures():
        key = feature[field]
        if key is None or not feature.hasGeometry():
            continue
        g = wkb.loads(bytes(feature.geometry().asWkb()))
        geoms[key] = geoms[key].union(g) if key in geoms else g
    return palette.adjacency_from_geometries(geoms)


def _labels(layer: QgsVectorLayer, field: str, kind: str) -> None:
    names = layer.fields().names()
    totals = [n for n in names if n.endswith("_total") or n in ("n_accounts", "accounts")]
    expression = f'"{field}"'
    for name in totals[:2]:
        expression += f" || '\\n{name}: ' || coalesce(format_number(\"{name}\", 0), '')"
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
    bands = sorted(float(v) for v in values)
    ranges = []
    lower = 0.0
    for i, band in enumerate(bands):
        t = i / max(len(bands) - 1, 1)
        colour = QColor.fromRgbF(0.0 + 0.8 * t, 0.45 + 0.2 * (1 - t), 0.7 * (1 - t), 0.35)
        symbol = QgsSymbol.defaultSymbol(geom_type)
        symbol.setColor(colour)
        if geom_type == QgsWkbTypes.PolygonGeometry:
            symbol.symbolLayer(0).setStrokeColor(QColor(40, 40, 40, 180))
        ranges.append(QgsRendererRange(lower, band, symbol, f"≤ {band:g} min"))
        lower = band
    renderer = QgsGraduatedSymbolRenderer(field, ranges)
    layer.setRenderer(renderer)
    layer.setOpacity(0.9)
    layer.triggerRepaint()
