"""Processing wrapper: drive-time catchment polygons around points (reps, depots, stores)."""

from __future__ import annotations

from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterString,
)

from ..territory_planner_plugin import catchments, network
from .base import (
    TerritoryPlannerAlgorithm,
    attach_style,
    check_cancelled,
    engine_callbacks,
    engine_run,
    enum_value,
    field_names,
    max_snap_parameter,
    network_parameter,
    parse_number_list,
    sink_parameter,
    source_or_error,
    source_to_gdf,
    step_feedback,
    write_sink,
)

SHAPES = (
    ("convex", "Convex hull (fast, smooth outline)"),
    ("concave", "Concave hull (follows the roads more closely)"),
    ("roads", "Buffered reachable roads (most exact)"),
)


class DriveTimeCatchmentsAlgorithm(TerritoryPlannerAlgorithm):
    """Areas reachable within each drive-time band from every input point."""

    ALGORITHM_ID = "drivetimecatchments"
    DISPLAY_NAME = "Drive-time catchments"
    GROUP = "Road network"
    GROUP_ID = "network"

    INPUT = "INPUT"
    ID_FIELD = "ID_FIELD"
    NETWORK = "NETWORK"
    BANDS = "BANDS"
    SHAPE = "SHAPE"
    PARTITION = "PARTITION"
    MAX_SNAP = "MAX_SNAP"
    OUTPUT = "OUTPUT"
    UNSNAPPED = "UNSNAPPED"

    def initAlgorithm(self, config=None) -> None:
        self.addParameter(
            QgsProcessingParameterFeatureSource(
                self.INPUT, self.tr("Origins (points)"), [QgsProcessing.TypeVectorPoint]
            )
        )
        self.addParameter(
            QgsProcessingParameterField(self.ID_FIELD, self.tr("Origin id field"), None, self.INPUT)
        )
        self.addParameter(network_parameter())
        self.addParameter(
            QgsProcessingParameterString(
                self.BANDS, self.tr("Drive-time bands (minutes)"), "5,10,15"
            )
        )
        self.addParameter(
            QgsProcessingParameterEnum(
                self.SHAPE, self.tr("Polygon shape"), [label for _, label in SHAPES], False, 0
            )
        )
        self.addParameter(
            QgsProcessingParameterBoolean(
                self.PARTITION,
                self.tr("Split overlaps: give each area to the nearest origin"),
                False,
            )
        )
        self.addParameter(max_snap_parameter())
        self.addParameter(
            sink_parameter(self.OUTPUT, self.tr("Catchments"), QgsProcessing.TypeVectorPolygon)
        )
        self.addOutput(
            QgsProcessingOutputNumber(self.UNSNAPPED, self.tr("Origins too far from the network"))
        )

    @engine_run
    def processAlgorithm(self, parameters, context, feedback):
        source = source_or_error(self, parameters, self.INPUT, context)
        id_field = field_names(self, parameters, self.ID_FIELD, context)[0]
        network_path = self.parameterAsFile(parameters, self.NETWORK, context)
        bands = parse_number_list(
            self.parameterAsString(parameters, self.BANDS, context), self.BANDS
        )
        shape = enum_value(self, parameters, self.SHAPE, context, SHAPES)
        partition = self.parameterAsBool(parameters, self.PARTITION, context)
        max_snap_m = self.parameterAsDouble(parameters, self.MAX_SNAP, context)

        if not bands:
            raise QgsProcessingException(
                "BANDS: give at least one drive time in minutes, e.g. 5,10,15."
            )
        if not network_path:
            raise QgsProcessingException("NETWORK: choose a road network file.")
        if source.fields().lookupField(id_field) < 0:
            raise QgsProcessingException(f"ID_FIELD: the field '{id_field}' is not in INPUT.")

        steps = step_feedback(feedback, 3)
        progress, is_cancelled = engine_callbacks(steps, root=feedback)
        net = network.load_network(network_path, progress=progress, is_cancelled=is_cancelled)
        steps.setCurrentStep(1)
        origins = source_to_gdf(
            source, feedback=steps, name="INPUT", target_crs=net.crs, points=True
        )
        steps.setCurrentStep(2)
        result = catchments.drive_time_catchments(
            net,
            origins,
            id_field=id_field,
            bands_minutes=sorted(set(bands)),
            shape=shape,
            partition=partition,
            max_snap_m=max_snap_m,
            progress=progress,
            is_cancelled=is_cancelled,
        )
        check_cancelled(feedback)
        dest_id = write_sink(
            self, parameters, self.OUTPUT, context, result.polygons, feedback=feedback
        )
        attach_style(context, dest_id, "catchments")
        return {self.OUTPUT: dest_id, self.UNSNAPPED: len(result.unsnapped)}
