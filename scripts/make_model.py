#!/usr/bin/env python3
"""Write models/territory_plan.model3: accounts + OSM file -> network, catchments, territories,
report and export, as one Processing model (Model Builder, qgis_process).

The model is built with the QGIS API (so the XML is exactly what QGIS 3.22 writes) and committed;
run this again after changing the steps below. It needs only the ``qgis`` Python package (the
Territory Planner provider is not loaded: the child algorithms are referenced by id).

Usage: .venv/bin/python scripts/make_model.py [--output models/territory_plan.model3]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("QT_HASH_SEED", "0")  # same XML attribute order on every run
from qgis.core import (
    QgsProcessing,
    QgsProcessingModelAlgorithm,
    QgsProcessingModelChildAlgorithm,
    QgsProcessingModelChildParameterSource,
    QgsProcessingModelOutput,
    QgsProcessingModelParameter,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
)
from qgis.PyQt.QtCore import QPointF

ROOT = Path(__file__).resolve().parents[1]
PROVIDER = "territory_planner"
MODEL_NAME = "territory_plan"  # the algorithm id is territory_planner:territory_plan
OSM_FILTER = "OpenStreetMap (*.osm *.pbf *.osm.pbf *.bz2 *.osm.bz2 *.graphml)"

HELP = {
    "ALG_DESC": (
        "The whole Territory Planner chain in one run: builds the road network from an "
        "OpenStreetMap file, draws 5/10/15-minute drive-time catchments around the reps, "
        "designs balanced territories (drive times on that network), writes the HTML report and "
        "exports the plan as a GeoPackage of territories and a CRM import CSV of accounts."
    ),
    "ALG_CREATOR": "Territory Planner",
    "ACCOUNTS": "Accounts (points) to split into territories.",
    "ID_FIELD": "Field that identifies each account (written to the CRM CSV).",
    "OSM": "OpenStreetMap extract (.osm, .osm.pbf, .osm.bz2) or GraphML covering the accounts.",
    "REPS": "Reps (home or office points): one territory per rep, catchments around each rep.",
    "REP_ID_FIELD": "Field that identifies each rep.",
    "REP_CAPACITY_FIELD": "Optional relative size of each rep's territory.",
    "BALANCE_FIELDS": "Numeric account fields to balance (e.g. revenue, visits).",
    "TERRITORIES": "Number of territories; empty = one per rep.",
    "TOLERANCE": "Allowed imbalance of each balanced field, in percent of the target.",
    "TIME_LIMIT": "Longest time the territory solver may run, in seconds.",
}


def source_param(name: str) -> list:
    return [QgsProcessingModelChildParameterSource.fromModelParameter(name)]


def child_output(child_id: str, output: str) -> list:
    return [QgsProcessingModelChildParameterSource.fromChildOutput(child_id, output)]


def static(value) -> list:
    return [QgsProcessingModelChildParameterSource.fromStaticValue(value)]


def build() -> QgsProcessingModelAlgorithm:
    model = QgsProcessingModelAlgorithm(MODEL_NAME, "Workflows", "workflows")
    model.setHelpContent(HELP)

    inputs = (
        QgsProcessingParameterFeatureSource(
            "ACCOUNTS", "Accounts (points)", [QgsProcessing.TypeVectorPoint]
        ),
        QgsProcessingParameterField("ID_FIELD", "Account id field", "id", "ACCOUNTS"),
        QgsProcessingParameterFile(
            "OSM", "OSM file", QgsProcessingParameterFile.File, "", None, False, OSM_FILTER
        ),
        QgsProcessingParameterFeatureSource(
            "REPS", "Reps (home or office points)", [QgsProcessing.TypeVectorPoint]
        ),
        QgsProcessingParameterField("REP_ID_FIELD", "Rep id field", "rep_id", "REPS"),
        QgsProcessingParameterField(
            "REP_CAPACITY_FIELD",
            "Rep capacity field (relative size)",
            None,
            "REPS",
            QgsProcessingParameterField.Numeric,
            optional=True,
        ),
        QgsProcessingParameterField(
            "BALANCE_FIELDS",
            "Fields to balance (e.g. revenue, visits)",
            None,
            "ACCOUNTS",
            QgsProcessingParameterField.Numeric,
            allowMultiple=True,
            optional=True,
        ),
        QgsProcessingParameterNumber(
            "TERRITORIES",
            "Number of territories (empty = one per rep)",
            QgsProcessingParameterNumber.Integer,
            None,
            True,
            1,
        ),
        QgsProcessingParameterNumber(
            "TOLERANCE",
            "Allowed imbalance (%)",
            QgsProcessingParameterNumber.Double,
            5.0,
            False,
            0.0,
            100.0,
        ),
        QgsProcessingParameterNumber(
            "TIME_LIMIT",
            "Solver time limit (seconds)",
            QgsProcessingParameterNumber.Double,
            60.0,
            False,
            1.0,
        ),
    )
    model.setParameterOrder([definition.name() for definition in inputs])
    for row, definition in enumerate(inputs):
        if definition.name() == "TIME_LIMIT":
            definition.setFlags(definition.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        component = QgsProcessingModelParameter(definition.name())
        component.setPosition(QPointF(140, 80 + row * 70))
        model.addModelParameter(definition, component)

    steps = (
        (
            "network",
            "buildroadnetwork",
            "Build road network",
            {"INPUT_OSM": source_param("OSM"), "NETWORK_TYPE": static(0)},
            {},
        ),
        (
            "catchments",
            "drivetimecatchments",
            "Drive-time catchments around the reps",
            {
                "INPUT": source_param("REPS"),
                "ID_FIELD": source_param("REP_ID_FIELD"),
                "NETWORK": child_output("network", "NETWORK"),
                "BANDS": static("5,10,15"),
                "SHAPE": static(0),
                "PARTITION": static(False),
                "MAX_SNAP": static(500.0),
            },
            {"catchments": ("OUTPUT", "Catchments")},
        ),
        (
            "design",
            "designterritories",
            "Design territories",
            {
                "ACCOUNTS": source_param("ACCOUNTS"),
                "ID_FIELD": source_param("ID_FIELD"),
                "REPS": source_param("REPS"),
                "REP_ID_FIELD": source_param("REP_ID_FIELD"),
                "REP_CAPACITY_FIELD": source_param("REP_CAPACITY_FIELD"),
                "BALANCE_FIELDS": source_param("BALANCE_FIELDS"),
                "TERRITORIES": source_param("TERRITORIES"),
                "TOLERANCE": source_param("TOLERANCE"),
                "NETWORK": child_output("network", "NETWORK"),
                "TRAVEL_WEIGHT": static(0.0),
                "SEED": static(0),
                "TIME_LIMIT": source_param("TIME_LIMIT"),
                "SOLVER": static(0),
            },
            {
                "accounts": ("OUTPUT_ACCOUNTS", "Accounts with territory"),
                "territories": ("OUTPUT_TERRITORIES", "Territories"),
            },
        ),
        (
            "report",
            "territoryreport",
            "Territory report",
            {
                "ACCOUNTS": child_output("design", "OUTPUT_ACCOUNTS"),
                "TERRITORY_FIELD": static("territory_id"),
                "BALANCE_FIELDS": source_param("BALANCE_FIELDS"),
                "TERRITORIES": child_output("design", "OUTPUT_TERRITORIES"),
                "SUMMARY": child_output("design", "OUTPUT_SUMMARY"),  # capacity-weighted targets
                "TOLERANCE": source_param("TOLERANCE"),
            },
            {"report": ("OUTPUT_HTML", "Report (HTML)")},
        ),
        (
            "export_gpkg",
            "exportterritories",
            "Export territories (GeoPackage)",
            {
                "INPUT": child_output("design", "OUTPUT_TERRITORIES"),
                "TERRITORY_FIELD": static("territory_id"),
                "FORMAT": static(1),
                "SPLIT": static(False),
            },
            {"export": ("OUTPUT", "Exported territories (GeoPackage)")},
        ),
        (
            "export_crm",
            "exportterritories",
            "Export accounts (CRM CSV)",
            {
                "INPUT": child_output("design", "OUTPUT_ACCOUNTS"),
                "TERRITORY_FIELD": static("territory_id"),
                "FORMAT": static(5),
                "ID_FIELD": source_param("ID_FIELD"),
                "SPLIT": static(False),
            },
            {"crm": ("OUTPUT", "CRM import CSV")},
        ),
    )
    positions = {  # the Model Designer layout: inputs left, steps middle, outputs right
        "network": (480, 120),
        "catchments": (860, 100),
        "design": (480, 400),
        "report": (860, 300),
        "export_gpkg": (860, 460),
        "export_crm": (860, 620),
    }
    output_positions = {"accounts": (480, 540), "territories": (480, 600)}  # under the design
    for child_id, alg, description, sources, outputs in steps:
        child = QgsProcessingModelChildAlgorithm(f"{PROVIDER}:{alg}")
        child.setChildId(child_id)
        child.setDescription(description)
        x, y = positions[child_id]
        child.setPosition(QPointF(x, y))
        for name, value in sources.items():
            child.addParameterSources(name, value)
        model_outputs = {}
        for offset, (output_name, (child_output_name, label)) in enumerate(outputs.items()):
            output = QgsProcessingModelOutput(output_name, label)
            output.setChildId(child_id)
            output.setChildOutputName(child_output_name)
            ox, oy = output_positions.get(output_name, (x + 300, y + 40 + offset * 50))
            output.setPosition(QPointF(ox, oy))
            model_outputs[output_name] = output
        child.setModelOutputs(model_outputs)
        model.addChildAlgorithm(child)
    return model


def register_provider() -> None:
    """Register the provider from this tree so that the steps and outputs are checked."""
    plugins = ROOT / "build" / "plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    if not (plugins / "territory_planner").exists():
        (plugins / "territory_planner").symlink_to(ROOT, target_is_directory=True)
    sys.path.insert(0, str(plugins))
    from qgis.core import QgsApplication
    from territory_planner.processing_algorithms.provider import TerritoryPlannerProvider

    provider = TerritoryPlannerProvider()
    QgsApplication.processingRegistry().addProvider(provider)
    register_provider.provider = provider  # keep it alive


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=ROOT / "models" / f"{MODEL_NAME}.model3")
    args = parser.parse_args()
    from qgis.core import QgsApplication

    app = QgsApplication([], False)
    app.initQgis()
    register_provider()
    model = build()
    for child_id in model.childAlgorithms():
        valid, issues = model.validateChildAlgorithm(child_id)
        if not valid:
            print(f"make_model.py: step {child_id}: {'; '.join(issues)}", file=sys.stderr)
            return 1
    args.output.parent.mkdir(parents=True, exist_ok=True)
    if not model.toFile(str(args.output)):
        print(f"make_model.py: could not write {args.output}", file=sys.stderr)
        return 1
    print(f"make_model.py: wrote {args.output}")
    app.exitQgis()
    return 0


if __name__ == "__main__":
    sys.exit(main())
