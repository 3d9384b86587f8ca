"""Processing wrapper: build a routable road network GeoPackage from OSM (file or download)."""

from __future__ import annotations

import os

from qgis.core import (
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingOutputVectorLayer,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterString,
)

from ..territory_planner_plugin import network
from .base import (
    TerritoryPlannerAlgorithm,
    attach_style,
    engine_callbacks,
    engine_run,
    enum_value,
)

OSM_FILE_FILTER = (
    "OpenStreetMap (*.osm *.pbf *.osm.pbf *.bz2 *.osm.bz2 *.graphml);;"
    "OSM XML (*.osm);;OSM PBF (*.pbf *.osm.pbf);;Compressed OSM XML (*.bz2 *.osm.bz2);;"
    "GraphML (*.graphml)"
)
NETWORK_TYPES = (
    ("drive", "Drive (public roads for cars)"),
    ("drive_service", "Drive, including service roads"),
    ("walk", "Walk"),
    ("bike", "Bike"),
    ("all", "All (every road and path)"),
)


class BuildRoadNetworkAlgorithm(TerritoryPlannerAlgorithm):
    """OSM file or map extent -> GeoPackage with `nodes` and `edges` (length, speed, time)."""

    ALGORITHM_ID = "buildroadnetwork"
    DISPLAY_NAME = "Build road network"
    GROUP = "Road network"
    GROUP_ID = "network"

    INPUT_OSM = "INPUT_OSM"
    EXTENT = "EXTENT"
    NETWORK_TYPE = "NETWORK_TYPE"
    SPEEDS = "SPEEDS"
    OVERPASS_URL = "OVERPASS_URL"
    OUTPUT = "OUTPUT"
    NETWORK = "NETWORK"
    NODES = "NODES"
    EDGES = "EDGES"

    def initAlgorithm(self, config=None) -> None:
        self.addParameter(
            QgsProcessingParameterFile(
                self.INPUT_OSM,
                self.tr("OSM file (.osm, .osm.pbf, .osm.bz2, .graphml); leave empty to download"),
                QgsProcessingParameterFile.File,
                "",
                None,
                True,
                OSM_FILE_FILTER,
            )
        )
        self.addParameter(
            QgsProcessingParameterExtent(
                self.EXTENT, self.tr("Area to download from OpenStreetMap"), None, True
            )
        )
        self.addParameter(
            QgsProcessingParameterEnum(
                self.NETWORK_TYPE,
                self.tr("Network type"),
                [label for _, label in NETWORK_TYPES],
                False,
                0,
            )
        )
        self.addParameter(
            QgsProcessingParameterString(
                self.SPEEDS,
                self.tr("Speeds by road class, km/h (e.g. motorway=110,primary=70,residential=30)"),
                None,
                False,
                True,
            )
        )
        url = QgsProcessingParameterString(
            self.OVERPASS_URL,
            self.tr("Overpass API server for downloads (empty: OSMnx's default)"),
            None,
            False,
            True,
        )
        url.setFlags(url.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(url)
        self.addParameter(
            QgsProcessingParameterFileDestination(
                self.OUTPUT, self.tr("Road network"), self.tr("GeoPackage (*.gpkg)")
            )
        )
        self.addOutput(QgsProcessingOutputFile(self.NETWORK, self.tr("Road network file")))
        self.addOutput(QgsProcessingOutputVectorLayer(self.NODES, self.tr("Road nodes")))
        self.addOutput(QgsProcessingOutputVectorLayer(self.EDGES, self.tr("Road edges")))

    @engine_run
    def processAlgorithm(self, parameters, context, feedback):
        osm_file = self.parameterAsFile(parameters, self.INPUT_OSM, context)
        has_extent = parameters.get(self.EXTENT) not in (None, "")
        network_type = enum_value(self, parameters, self.NETWORK_TYPE, context, NETWORK_TYPES)
        speeds_text = self.parameterAsString(parameters, self.SPEEDS, context)
        overpass_url = self.parameterAsString(parameters, self.OVERPASS_URL, context).strip()
        output = self.parameterAsFileOutput(parameters, self.OUTPUT, context)

        if osm_file and has_extent:
            feedback.pushWarning(
                "Both INPUT_OSM and EXTENT are set: using the file, not the extent."
            )
        bbox = None
        if not osm_file:
            if not has_extent:
                msg = "Give an OSM file (INPUT_OSM) or an area to download (EXTENT)."
                raise QgsProcessingException(msg)
            wgs84 = QgsCoordinateReferenceSystem("EPSG:4326")
            rect = self.parameterAsExtent(parameters, self.EXTENT, context, wgs84)
            if rect.isEmpty():
                raise QgsProcessingException("EXTENT is empty: draw or choose a larger area.")
            bbox = (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum())
            feedback.pushInfo(
                "Downloading from OpenStreetMap, EPSG:4326 bbox {:.5f},{:.5f},{:.5f},{:.5f}".format(
                    *bbox
                )
            )
        elif not os.path.isfile(osm_file):
            raise QgsProcessingException(f"INPUT_OSM: file not found: {osm_file}")
        if not output.lower().endswith(".gpkg"):
            output += ".gpkg"
        speeds = network.parse_speeds(speeds_text) if speeds_text.strip() else None

        progress, is_cancelled = engine_callbacks(feedback)
        graph = network.build_road_network(
            osm_file or None,
            bbox=bbox,
            network_type=network_type,
            speeds_kph=speeds,
            cache_folder=os.path.join(
                QgsApplication.qgisSettingsDirPath(), "territory_planner", "osm_cache"
            ),
            overpass_url=overpass_url or None,
            progress=progress,
            is_cancelled=is_cancelled,
        )
        if feedback.isCanceled():
            return {}
        network.save_network(graph, output)
        feedback.pushInfo(
            f"Road network: {graph.number_of_nodes()} nodes, "
            f"{graph.number_of_edges()} edges -> {output}"
        )
        if context.project() is not None:  # the dialog loads the two layers when it finishes
            for key, layer in ((self.EDGES, "edges"), (self.NODES, "nodes")):
                details = QgsProcessingContext.LayerDetails(f"Road {layer}", context.project(), key)
                context.addLayerToLoadOnCompletion(f"{output}|layername={layer}", details)
        for layer in ("edges", "nodes"):  # quiet grey style, stored in the GeoPackage
            attach_style(context, f"{output}|layername={layer}", "roads")
        return {
            self.OUTPUT: output,
            self.NETWORK: output,
            self.NODES: f"{output}|layername=nodes",
            self.EDGES: f"{output}|layername=edges",
        }
