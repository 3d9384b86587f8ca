"""The provider ships models/territory_plan.model3 as ``territory_planner:territory_plan``."""

from __future__ import annotations

MODEL_ID = "territory_planner:territory_plan"
STEPS = {
    "network": "territory_planner:buildroadnetwork",
    "catchments": "territory_planner:drivetimecatchments",
    "design": "territory_planner:designterritories",
    "report": "territory_planner:territoryreport",
    "export_gpkg": "territory_planner:exportterritories",
    "export_crm": "territory_planner:exportterritories",
}


def test_model_is_an_algorithm_of_the_provider(territory_provider):
    from qgis.core import QgsApplication

    model = QgsApplication.processingRegistry().algorithmById(MODEL_ID)
    assert model is not None
    assert model.provider().id() == "territory_planner"
    assert model.name() == "territory_plan"
    assert model.displayName() != model.name()  # a readable title in the toolbox
    assert model.shortHelpString()


def test_model_steps_are_linked_and_valid(territory_provider):
    from qgis.core import QgsApplication

    model = QgsApplication.processingRegistry().algorithmById(MODEL_ID)
    children = model.childAlgorithms()
    assert {child_id: child.algorithmId() for child_id, child in children.items()} == STEPS
    for child in children.values():
        assert child.algorithm() is not None, f"{child.algorithmId()} is not linked"
    valid, issues = model.validate()
    assert valid, issues
    outputs = {p.name() for p in model.destinationParameterDefinitions()}
    assert outputs == {
        "catchments:catchments", "design:accounts", "design:territories", "report:report",
        "export_gpkg:export", "export_crm:crm",
    }  # fmt: skip


def test_model_copy_keeps_id_and_title(territory_provider):
    from qgis.core import QgsApplication

    model = QgsApplication.processingRegistry().algorithmById(MODEL_ID)
    clone = model.create()
    assert clone.id() == MODEL_ID
    assert clone.displayName() == model.displayName()
    assert {p.name() for p in clone.parameterDefinitions()} == {
        p.name() for p in model.parameterDefinitions()
    }
