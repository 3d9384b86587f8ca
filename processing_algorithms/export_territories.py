"""territory_planner:exportterritories - Shapefile, GeoPackage, KML/KMZ, GeoJSON, CRM CSV."""

from __future__ import annotations

from qgis.core import (
    QgsProcessingOutputMultipleLayers,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFileDestination,
)

from ..territory_planner_plugin import export
from .base import (
    TerritoryPlannerAlgorithm,
    engine_run,
    enum_value,
    field_names,
    optional_field,
    source_or_error,
    source_to_gdf,
)

FORMATS = (
    ("ESRI Shapefile", "ESRI Shapefile (.shp, field names cut to 10 bytes)"),
    ("GPKG", "GeoPackage (.gpkg)"),
    ("KML", "KML (Google Earth)"),
    ("KMZ", "KMZ (zipped KML)"),
    ("GeoJSON", "GeoJSON (EPSG:4326, RFC 7946)"),
    ("CSV", "CRM import CSV (account id, territory, rep, previous territory, changed + FIELDS)"),
)


ENCODINGS = (("utf-8", "UTF-8"), ("utf-8-sig", "UTF-8 with BOM (Excel)"))


class ExportTerritoriesAlgorithm(TerritoryPlannerAlgorithm):
    """Write territories or accounts to the formats other tools read."""

    ALGORITHM_ID = "exportterritories"
    DISPLAY_NAME = "Export territories"
    GROUP = "Results"
    GROUP_ID = "results"

    INPUT = "INPUT"
    TERRITORY_FIELD = "TERRITORY_FIELD"
    FORMAT = "FORMAT"
    FIELDS = "FIELDS"
    ID_FIELD = "ID_FIELD"
    REP_FIELD = "REP_FIELD"
    ENCODING = "ENCODING"
    SPLIT = "SPLIT"
    OUTPUT = "OUTPUT"
    OUTPUT_FILES = "OUTPUT_FILES"

    def initAlgorithm(self, config=None) -> None:
        self.addParameter(
            QgsProcessingParameterFeatureSource(self.INPUT, self.tr("Territories or accounts"))
        )
        self.addParameter(
            QgsProcessingParameterField(
                self.TERRITORY_FIELD, self.tr("Territory field"), "territory_id", self.INPUT
            )
        )
        self.addParameter(
            QgsProcessingParameterEnum(
                self.FORMAT, self.tr("Format"), [label for _, label in FORMATS], defaultValue=1
            )
        )
        self.addParameter(
            QgsProcessingParameterField(
                self.FIELDS,
                self.tr("Extra fields (CRM CSV)"),
                None,
                self.INPUT,
                allowMultiple=True,
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterField(
                self.ID_FIELD,
                self.tr("Account id field (CRM CSV; default id)"),
                None,
                self.INPUT,
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterField(
                self.REP_FIELD,
                self.tr("Rep field (CRM CSV and KML names; default rep_id)"),
                None,
                self.INPUT,
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterEnum(
                self.ENCODING,
                self.tr("CSV encoding"),
                [label for _, label in ENCODINGS],
                defaultValue=0,
                optional=True,  # older models and scripts that do not set it keep working
            )
        )
        self.addParameter(
            QgsProcessingParameterBoolean(self.SPLIT, self.tr("One file per territory"), False)
        )
        self.addParameter(
            QgsProcessingParameterFileDestination(
                self.OUTPUT,
                self.tr("Output file (or folder when split)"),
                "GeoPackage (*.gpkg);;Shapefile (*.shp);;KML (*.kml);;KMZ (*.kmz);;GeoJSON (*.geojson);;CSV (*.csv)",
            )
        )
        self.addOutput(
            QgsProcessingOutputMultipleLayers(self.OUTPUT_FILES, self.tr("Written files"))
        )

    @engine_run
    def processAlgorithm(self, parameters, context, feedback):
        source = source_or_error(self, parameters, self.INPUT, context)
        field = self.parameterAsString(parameters, self.TERRITORY_FIELD, context) or "territory_id"
        fmt = enum_value(self, parameters, self.FORMAT, context, FORMATS)
        fields = field_names(self, parameters, self.FIELDS, context)
        id_field = optional_field(self, parameters, self.ID_FIELD, context) or "id"
        rep_field = optional_field(self, parameters, self.REP_FIELD, context) or "rep_id"
        encoding = enum_value(self, parameters, self.ENCODING, context, ENCODINGS)
        split = self.parameterAsBool(parameters, self.SPLIT, context)
        output = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        gdf = source_to_gdf(source, feedback=feedback, name=self.INPUT)
        if "fid" in gdf.columns and source.fields().indexOf("fid") < 0:
            gdf = gdf.drop(columns="fid")
        if split:
            output = output.rsplit(".", 1)[0]
        files = export.export_plan(
            gdf, output, territory_field=field, fmt=fmt, split=split, fields=fields,
            id_field=id_field, rep_field=rep_field, encoding=encoding,
        )  # fmt: skip
        for path in files:
            feedback.pushInfo(f"Written: {path}")
        return {self.OUTPUT: files[0] if len(files) == 1 else output, self.OUTPUT_FILES: files}
