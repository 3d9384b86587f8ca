"""Processing wrapper: data-quality checks on accounts before planning (flags, never fixes)."""

from __future__ import annotations

from qgis.core import (
    QgsCategorizedSymbolRenderer,
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterNumber,
    QgsRendererCategory,
    QgsSymbol,
    QgsVectorLayer,
)
from qgis.PyQt.QtGui import QColor

from ..territory_planner_plugin import checks
from . import styles
from .base import (
    TerritoryPlannerAlgorithm,
    check_cancelled,
    engine_run,
    field_names,
    max_snap_parameter,
    network_parameter,
    network_steps,
    optional_field,
    sink_parameter,
    source_or_error,
    source_to_gdf,
    write_sink,
)

_Number = QgsProcessingParameterNumber
# strong references: Processing does not own the Python post-processor object (sip)
_KEEP: list[QgsProcessingLayerPostProcessorInterface] = []


class CheckAccountsAlgorithm(TerritoryPlannerAlgorithm):
    """Flag duplicate, misplaced or implausible accounts and score the data quality."""

    ALGORITHM_ID = "checkaccounts"
    DISPLAY_NAME = "Check accounts (data quality)"
    GROUP = "Territories"
    GROUP_ID = "territories"

    INPUT = "INPUT"
    ID_FIELD = "ID_FIELD"
    NAME_FIELD = "NAME_FIELD"
    NUMERIC_FIELDS = "NUMERIC_FIELDS"
    DUPLICATE_DISTANCE = "DUPLICATE_DISTANCE"
    OUTLIER_Z = "OUTLIER_Z"
    NETWORK = "NETWORK"
    MAX_SNAP = "MAX_SNAP"
    STUDY_AREA = "STUDY_AREA"
    OUTPUT = "OUTPUT"
    OUTPUT_SUMMARY = "OUTPUT_SUMMARY"
    QUALITY_SCORE = "QUALITY_SCORE"
    FLAGGED = "FLAGGED"

    def initAlgorithm(self, config=None) -> None:
        add = self.addParameter
        add(
            QgsProcessingParameterFeatureSource(
                self.INPUT, self.tr("Accounts (points)"), [QgsProcessing.TypeVectorPoint]
            )
        )
        add(
            QgsProcessingParameterField(
                self.ID_FIELD, self.tr("Account id field"), None, self.INPUT
            )
        )
        add(
            QgsProcessingParameterField(
                self.NAME_FIELD,
                self.tr("Account name field (for likely duplicates)"),
                None,
                self.INPUT,
                optional=True,
            )
        )
        add(
            QgsProcessingParameterField(
                self.NUMERIC_FIELDS,
                self.tr("Numeric fields to check (e.g. revenue, visits)"),
                None,
                self.INPUT,
                QgsProcessingParameterField.Any,
                allowMultiple=True,
                optional=True,
            )
        )
        add(
            _Number(
                self.DUPLICATE_DISTANCE,
                self.tr("Same name within this distance = likely duplicate (metres)"),
                _Number.Double,
                100.0,
                False,
                0.0,
            )
        )
        add(
            _Number(
                self.OUTLIER_Z,
                self.tr("Outlier threshold (robust z-score)"),
                _Number.Double,
                3.5,
                False,
                0.1,
            )
        )
        add(
            network_parameter(
                optional=True, description=self.tr("Road network (empty = no road check)")
            )
        )
        add(max_snap_parameter())
        add(
            QgsProcessingParameterFeatureSource(
                self.STUDY_AREA,
                self.tr("Study area (polygons)"),
                [QgsProcessing.TypeVectorPolygon],
                None,
                True,
            )
        )
        add(
            sink_parameter(
                self.OUTPUT, self.tr("Accounts with check flags"), QgsProcessing.TypeVectorPoint
            )
        )
        add(
            sink_parameter(
                self.OUTPUT_SUMMARY,
                self.tr("Data-quality summary"),
                QgsProcessing.TypeVector,
                optional=True,
            )
        )
        self.addOutput(
            QgsProcessingOutputNumber(self.QUALITY_SCORE, self.tr("Quality score (% clean)"))
        )
        self.addOutput(QgsProcessingOutputNumber(self.FLAGGED, self.tr("Flagged accounts")))

    @engine_run
    def processAlgorithm(self, parameters, context, feedback):
        source = source_or_error(self, parameters, self.INPUT, context)
        id_fields = field_names(self, parameters, self.ID_FIELD, context)
        if not id_fields:
            raise QgsProcessingException("ID_FIELD: choose the field that identifies each account.")
        name_field = optional_field(self, parameters, self.NAME_FIELD, context)
        numeric_fields = field_names(self, parameters, self.NUMERIC_FIELDS, context)
        distance = self.parameterAsDouble(parameters, self.DUPLICATE_DISTANCE, context)
        outlier_z = self.parameterAsDouble(parameters, self.OUTLIER_Z, context)
        network_path = self.parameterAsFile(parameters, self.NETWORK, context)
        max_snap = self.parameterAsDouble(parameters, self.MAX_SNAP, context)
        area_source = self.parameterAsSource(parameters, self.STUDY_AREA, context)
        if parameters.get(self.STUDY_AREA) not in (None, "") and area_source is None:
            raise QgsProcessingException(self.invalidSourceError(parameters, self.STUDY_AREA))

        steps, progress, is_cancelled, net = network_steps(feedback, network_path)
        accounts = source_to_gdf(source, feedback=steps, name=self.INPUT)  # input CRS kept
        area = None
        if area_source is not None:
            area = source_to_gdf(area_source, feedback=steps, name=self.STUDY_AREA)
        steps.setCurrentStep(2)
        result = checks.check_accounts(
            accounts,
            id_field=id_fields[0],
            name_field=name_field,
            numeric_fields=tuple(numeric_fields),
            duplicate_distance_m=distance,
            outlier_z=outlier_z,
            network=net,
            max_snap_m=max_snap,
            study_area=area,
            progress=progress,
            is_cancelled=is_cancelled,
        )
        check_cancelled(feedback)

        results = {
            self.OUTPUT: write_sink(
                self, parameters, self.OUTPUT, context, result.flagged, feedback=feedback
            ),
            self.OUTPUT_SUMMARY: write_sink(
                self,
                parameters,
                self.OUTPUT_SUMMARY,
                context,
                result.summary,
                feedback=feedback,
                geometry=False,
            ),
        }
        _attach_style(context, results[self.OUTPUT])
        styles.save_style_with_data(results[self.OUTPUT], "checks", style=style_checked)
        results[self.QUALITY_SCORE] = float(result.quality_score)
        results[self.FLAGGED] = int(result.n_flagged)
        feedback.pushInfo(
            f"Quality score: {result.quality_score:.1f}% clean, {result.n_flagged} flagged "
            f"(guidance: above {checks.QUALITY_GUIDANCE_PCT:g}%)."
        )
        return results


def _attach_style(context, dest_id: str | None) -> None:
    """Colour the flagged copy by ``chk_ok`` (green clean, red flagged) when Processing loads it."""
    if not dest_id or not context.willLoadLayerOnCompletion(dest_id):
        return
    post = CheckStylePostProcessor()
    _KEEP.append(post)
    details = context.layerToLoadOnCompletionDetails(dest_id)
    details.setPostProcessor(post)
    if hasattr(details, "groupName"):  # QGIS >= 3.32
        details.groupName = "Territory Planner"


class CheckStylePostProcessor(QgsProcessingLayerPostProcessorInterface):
    """Categorized style on ``chk_ok``; NOT the algorithm class (runs in the main thread)."""

    def postProcessLayer(self, layer, context, feedback) -> None:
        if isinstance(layer, QgsVectorLayer):
            style_checked(layer)


def style_checked(layer: QgsVectorLayer) -> bool:
    """Colour ``layer`` by ``chk_ok``; False when it has no such field."""
    if layer.fields().indexOf("chk_ok") < 0:
        return False
    categories = []
    for value, colour, size, label in (
        (True, "#1a9850", 1.8, "clean"),
        (False, "#d73027", 3.0, "flagged (see chk_reasons)"),
    ):
        symbol = QgsSymbol.defaultSymbol(layer.geometryType())
        symbol.setColor(QColor(colour))
        if hasattr(symbol, "setSize"):  # marker symbols (point layers)
            symbol.setSize(size)
        categories.append(QgsRendererCategory(value, symbol, label))
    layer.setRenderer(QgsCategorizedSymbolRenderer("chk_ok", categories))
    layer.triggerRepaint()
    return True
