"""Processing wrapper: origin x destination drive-time (minutes) and distance (km) table."""

from __future__ import annotations

from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterNumber,
)

from ..territory_planner_plugin import matrix, network
from .base import (
    TerritoryPlannerAlgorithm,
    check_cancelled,
    engine_callbacks,
    engine_run,
    field_names,
    max_snap_parameter,
    network_parameter,
    optional_number,
    sink_parameter,
    source_or_error,
    source_to_gdf,
    step_feedback,
    write_sink,
)


class TravelTimeMatrixAlgorithm(TerritoryPlannerAlgorithm):
    """Shortest drive time and distance from every origin to every destination."""

    ALGORITHM_ID = "traveltimematrix"
    DISPLAY_NAME = "Travel-time matrix"
    GROUP = "Road network"
    GROUP_ID = "network"

    ORIGINS = "ORIGINS"
    ORIGIN_ID_FIELD = "ORIGIN_ID_FIELD"
    DESTINATIONS = "DESTINATIONS"
    DESTINATION_ID_FIELD = "DESTINATION_ID_FIELD"
    NETWORK = "NETWORK"
    MAX_MINUTES = "MAX_MINUTES"
    MAX_SNAP = "MAX_SNAP"
    OUTPUT = "OUTPUT"
    UNREACHABLE = "UNREACHABLE"

    def initAlgorithm(self, config=None) -> None:
        for key, field_key, label in (
            (self.ORIGINS, self.ORIGIN_ID_FIELD, "Origins"),
            (self.DESTINATIONS, self.DESTINATION_ID_FIELD, "Destinations"),
        ):
            self.addParameter(
                QgsProcessingParameterFeatureSource(
                    key, self.tr(f"{label} (points)"), [QgsProcessing.TypeVectorPoint]
                )
            )
            self.addParameter(
                QgsProcessingParameterField(field_key, self.tr(f"{label} id field"), None, key)
            )
        self.addParameter(network_parameter())
        self.addParameter(
            QgsProcessingParameterNumber(
                self.MAX_MINUTES,
                self.tr("Stop searching after (minutes; empty = no limit)"),
                QgsProcessingParameterNumber.Double,
                None,
                True,
                0.0,
            )
        )
        self.addParameter(max_snap_parameter())
        self.addParameter(
            sink_parameter(self.OUTPUT, self.tr("Travel-time matrix"), QgsProcessing.TypeVector)
        )
        self.addOutput(
            QgsProcessingOutputNumber(
                self.UNREACHABLE, self.tr("Unreachable origin-destination pairs")
            )
        )

    @engine_run
    def processAlgorithm(self, parameters, context, feedback):
        origins_source = source_or_error(self, parameters, self.ORIGINS, context)
        destinations_source = source_or_error(self, parameters, self.DESTINATIONS, context)
        origin_id = field_names(self, parameters, self.ORIGIN_ID_FIELD, context)[0]
        destination_id = field_names(self, parameters, self.DESTINATION_ID_FIELD, context)[0]
        network_path = self.parameterAsFile(parameters, self.NETWORK, context)
        max_minutes = optional_number(self, parameters, self.MAX_MINUTES, context)
        max_snap_m = self.parameterAsDouble(parameters, self.MAX_SNAP, context)

        if not network_path:
            raise QgsProcessingException("NETWORK: choose a road network file.")
        if max_minutes is not None and max_minutes <= 0:
            msg = (
                f"MAX_MINUTES: {max_minutes:g} minutes would leave every pair unreachable; give "
                "minutes greater than 0 (e.g. 30), or leave it empty for no limit."
            )
            raise QgsProcessingException(msg)
        n_pairs = origins_source.featureCount() * destinations_source.featureCount()
        if n_pairs > 5_000_000:
            feedback.pushWarning(f"{n_pairs} origin-destination pairs: the table will be large.")

        steps = step_feedback(feedback, 3)
        progress, is_cancelled = engine_callbacks(steps, root=feedback)
        net = network.load_network(network_path, progress=progress, is_cancelled=is_cancelled)
        steps.setCurrentStep(1)
        origins = source_to_gdf(
            origins_source, feedback=steps, name="ORIGINS", target_crs=net.crs, points=True
        )
        destinations = source_to_gdf(
            destinations_source,
            feedback=steps,
            name="DESTINATIONS",
            target_crs=net.crs,
            points=True,
        )
        steps.setCurrentStep(2)
        table = matrix.travel_time_matrix(
            net,
            origins,
            destinations,
            origin_id_field=origin_id,
            destination_id_field=destination_id,
            max_minutes=max_minutes,
            max_snap_m=max_snap_m,
            progress=progress,
            is_cancelled=is_cancelled,
        )
        check_cancelled(feedback)
        unreachable = int(table["minutes"].isna().sum())
        if unreachable:
            feedback.pushWarning(
                f"{unreachable} of {len(table)} pairs are unreachable (NULL minutes/km): beyond "
                "MAX_MINUTES, off the network (MAX_SNAP), without a geometry or on a disconnected part "
                "of it."
            )
        dest_id = write_sink(
            self, parameters, self.OUTPUT, context, table, feedback=feedback, geometry=False
        )
        return {self.OUTPUT: dest_id, self.UNREACHABLE: unreachable}
