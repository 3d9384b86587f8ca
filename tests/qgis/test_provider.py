"""The provider lists the algorithms with the public parameter contract, help and icons."""

from __future__ import annotations

import os

import pytest

# Units (areas) and contiguity, the same in designterritories and rebalanceterritories.
UNIT_PARAMETERS = (
    "UNITS", "UNIT_ID_FIELD", "UNIT_BALANCE_FIELDS", "UNIT_LOCK_FIELD", "UNIT_CURRENT_FIELD",
    "CONTIGUOUS", "ADJACENCY", "SNAP_DISTANCE", "STUDY_AREA", "UNIT_MAX_DISTANCE", "OUTPUT_UNITS",
)  # fmt: skip
UNIT_OUTPUTS = ("OUTPUT_UNITS", "SPLIT_TERRITORIES", "ACCOUNTS_OUTSIDE_UNITS")
# Coverage models (named-account tier, expertise), the same in both planning algorithms.
COVERAGE_PARAMETERS = (
    "NAMED_FIELD", "NAMED_TOP_PCT", "NAMED_MEASURE", "REP_NAMED_FIELD", "SEGMENT_FIELD",
    "REP_SKILLS_FIELD", "SKILL_RULE", "SKILL_WEIGHT",
)  # fmt: skip
# Groups (solved separately) and regions (second level), the same in both planning algorithms.
GROUP_PARAMETERS = ("GROUP_FIELD", "UNIT_GROUP_FIELD", "REP_GROUP_FIELD", "REGIONS")

CONTRACT = {
    "buildroadnetwork": (
        {"INPUT_OSM", "EXTENT", "NETWORK_TYPE", "SPEEDS", "OVERPASS_URL", "OUTPUT"},
        {"OUTPUT", "NETWORK"},
    ),
    "drivetimecatchments": (
        {"INPUT", "ID_FIELD", "NETWORK", "BANDS", "SHAPE", "PARTITION", "MAX_SNAP", "OUTPUT"},
        {"OUTPUT", "UNSNAPPED"},
    ),
    "traveltimematrix": (
        {
            "ORIGINS", "ORIGIN_ID_FIELD", "DESTINATIONS", "DESTINATION_ID_FIELD", "NETWORK",
            "MAX_MINUTES", "MAX_SNAP", "OUTPUT",
        },
        {"OUTPUT", "UNREACHABLE"},
    ),
    "designterritories": (
        {
            "ACCOUNTS", "ID_FIELD", "TERRITORIES", "REPS", "REP_ID_FIELD", "REP_CAPACITY_FIELD",
            "REP_MAX_MINUTES", "BALANCE_FIELDS", "BALANCE_WEIGHTS", "TRAVEL_WEIGHT", "TOLERANCE",
            "LOCK_FIELD", "CURRENT_FIELD", "MAX_MOVES", "NETWORK", "QUOTA_TOTAL", "SEED",
            "TIME_LIMIT", "SOLVER", "OUTPUT_ACCOUNTS", "OUTPUT_TERRITORIES", "OUTPUT_CENTRES",
            "OUTPUT_SUMMARY", "MANIFEST", "OUTPUT_MANIFEST", *UNIT_PARAMETERS,
            *COVERAGE_PARAMETERS, *GROUP_PARAMETERS,
        },
        {
            "OUTPUT_ACCOUNTS", "OUTPUT_TERRITORIES", "OUTPUT_CENTRES", "OUTPUT_SUMMARY",
            "OBJECTIVE", "LOWER_BOUND", "GAP_PCT", "MAX_DEVIATION_PCT", "MOVED", "OUTPUT_MANIFEST",
            "BOUND_SCOPE", *UNIT_OUTPUTS, "REGION_MAX_DEVIATION_PCT",
        },
    ),
    "rebalanceterritories": (
        {
            "ACCOUNTS", "ID_FIELD", "CURRENT_FIELD", "REPS", "REP_ID_FIELD", "REP_CAPACITY_FIELD",
            "REP_MAX_MINUTES", "BALANCE_FIELDS", "BALANCE_WEIGHTS", "TOLERANCE", "LOCK_FIELD",
            "MAX_MOVES", "MINIMISE", "MINIMISE_FIELD", "UNIT_MINIMISE_FIELD", "NETWORK", "TIME_LIMIT", "SOLVER",
            "OUTPUT_ACCOUNTS", "OUTPUT_TERRITORIES", "OUTPUT_CENTRES", "OUTPUT_SUMMARY",
            "OUTPUT_MOVES", "MANIFEST", "OUTPUT_MANIFEST", *UNIT_PARAMETERS,
            *COVERAGE_PARAMETERS, *GROUP_PARAMETERS,
        },
        {
            "OUTPUT_ACCOUNTS", "OUTPUT_TERRITORIES", "OUTPUT_CENTRES", "OUTPUT_SUMMARY",
            "OUTPUT_MOVES", "OBJECTIVE", "LOWER_BOUND", "GAP_PCT", "MAX_DEVIATION_PCT", "MOVED",
            "MOVES_LOWER_BOUND", "OUTPUT_MANIFEST", "BOUND_SCOPE", *UNIT_OUTPUTS,
            "REGION_MAX_DEVIATION_PCT",
        },
    ),
    "checkaccounts": (
        {
            "INPUT", "ID_FIELD", "NAME_FIELD", "NUMERIC_FIELDS", "DUPLICATE_DISTANCE", "OUTLIER_Z",
            "NETWORK", "MAX_SNAP", "STUDY_AREA", "OUTPUT", "OUTPUT_SUMMARY",
        },
        {"OUTPUT", "OUTPUT_SUMMARY", "QUALITY_SCORE", "FLAGGED"},
    ),
    "exportterritories": (
        {
            "INPUT", "TERRITORY_FIELD", "FORMAT", "FIELDS", "ID_FIELD", "REP_FIELD", "ENCODING",
            "SPLIT", "OUTPUT",
        },
        {"OUTPUT", "OUTPUT_FILES"},
    ),
    "territoryreport": (
        {
            "ACCOUNTS", "TERRITORY_FIELD", "BALANCE_FIELDS", "CURRENT_FIELD", "TERRITORIES",
            "TOLERANCE", "OUTPUT_HTML", "OUTPUT_CSV", "ACTIVE_FIELD", "VISITS_FIELD",
            "VISIT_MINUTES_FIELD", "VISIT_MINUTES", "COMPARE_ACCOUNTS", "COMPARE_TERRITORY_FIELD",
            "ID_FIELD", "SUMMARY", "CENTRES", "MAX_MOVES", "BACKTEST_FIELD",
        },
        {"OUTPUT_HTML", "OUTPUT_CSV", "OUTPUT"},
    ),
    "sizeterritories": (
        {
            "ACCOUNTS", "ID_FIELD", "BALANCE_FIELDS", "TARGET_FIELD", "TARGET_PER_TERRITORY",
            "TARGET_MIN", "TARGET_MAX", "K_MIN", "K_MAX", "TOLERANCE", "CURRENT_FIELD", "NETWORK",
            "SEED", "TIME_LIMIT", "OUTPUT_TABLE", "OUTPUT_HTML",
        },
        {"OUTPUT_TABLE", "OUTPUT_HTML", "RECOMMENDED_K"},
    ),
    "compareplans": (
        {
            "PLANS", "ID_FIELD", "TERRITORY_FIELD", "BALANCE_FIELDS", "PLAN_NAMES", "OUTPUT_KPIS",
            "OUTPUT_DIFFERENCES", "OUTPUT_HTML", "CAPACITIES", "TOLERANCE",
        },
        {"OUTPUT_KPIS", "OUTPUT_DIFFERENCES", "OUTPUT_HTML", "OUTPUT", "PLANS_COMPARED"},
    ),
}  # fmt: skip


MODULES = (
    "build_road_network",
    "drive_time_catchments",
    "travel_time_matrix",
    "check_accounts",
    "design_territories",
    "rebalance_territories",
    "size_territories",
    "export_territories",
    "territory_report",
    "compare_plans",
)


def test_provider_is_registered(territory_provider):
    from qgis.core import QgsApplication

    provider = QgsApplication.processingRegistry().providerById("territory_planner")
    assert provider is not None
    assert provider.name() == "Territory Planner"
    assert os.path.isfile(provider.svgIconPath())
    assert {alg.name() for alg in provider.algorithms()} >= set(CONTRACT)


@pytest.mark.parametrize("alg_id", sorted(CONTRACT))
def test_algorithm_contract(territory_provider, alg_id):
    from qgis.core import QgsApplication

    alg = QgsApplication.processingRegistry().algorithmById(f"territory_planner:{alg_id}")
    assert alg is not None
    parameters, outputs = CONTRACT[alg_id]
    assert {p.name() for p in alg.parameterDefinitions()} == parameters
    assert outputs <= {o.name() for o in alg.outputDefinitions()}  # Model Builder can chain them
    assert alg.displayName()
    assert alg.group()
    assert alg.groupId() == alg.groupId().lower()
    assert alg.name() == alg_id
    for key in parameters:  # plain words for every parameter in the help
        assert key in alg.shortHelpString(), f"{key} is not explained in help/{alg_id}.html"
    assert os.path.isfile(alg.svgIconPath())
    assert os.path.basename(alg.svgIconPath()) == f"{alg_id}.svg"
    clone = alg.create()
    assert type(clone) is type(alg)
    assert clone is not alg


@pytest.mark.parametrize("alg_id", ["designterritories", "rebalanceterritories"])
def test_units_parameters_are_optional_with_documented_defaults(territory_provider, alg_id):
    """Plans from accounts run as before: every new input is optional, enums start at Automatic."""
    from qgis.core import QgsApplication, QgsProcessingParameterDefinition

    alg = QgsApplication.processingRegistry().algorithmById(f"territory_planner:{alg_id}")
    optional = QgsProcessingParameterDefinition.FlagOptional
    for key in ("ACCOUNTS", "ID_FIELD", *UNIT_PARAMETERS):
        definition = alg.parameterDefinition(key)
        assert definition.flags() & optional or definition.defaultValue() is not None, key
    contiguous = alg.parameterDefinition("CONTIGUOUS")
    assert contiguous.defaultValue() == 0
    assert contiguous.options()[0].startswith("Automatic")
    assert [o.split(" (")[-1] for o in alg.parameterDefinition("ADJACENCY").options()] == [
        "rook)", "queen)",
    ]  # fmt: skip
    assert alg.parameterDefinition("SNAP_DISTANCE").defaultValue() == 1.0
    assert alg.parameterDefinition("UNIT_MAX_DISTANCE").defaultValue() == 0.0
    assert alg.parameterDefinition("UNIT_ID_FIELD").parentLayerParameterName() == "UNITS"


def test_algorithm_classes_follow_naming(territory_provider):
    from territory_planner.processing_algorithms import provider

    for cls in provider.ALGORITHMS:
        assert cls.__name__.endswith("Algorithm")
        module = cls.__module__.rsplit(".", 1)[-1]
        assert module.replace("_", "") == cls.ALGORITHM_ID
        for key in CONTRACT[cls.ALGORITHM_ID][0]:
            assert getattr(cls, key, None) == key  # UPPER_CASE class constants


def test_wrappers_do_not_touch_the_gui(territory_provider):
    """processAlgorithm runs in a worker thread: no iface, canvas or QgsProject.instance()."""
    from pathlib import Path

    folder = Path(territory_provider.svgIconPath()).parents[1] / "processing_algorithms"
    names = ("base", "provider", *MODULES)
    for path in (folder / f"{name}.py" for name in names):
        text = path.read_text(encoding="utf-8")
        for forbidden in ("iface", "mapCanvas", "QgsProject.instance()"):
            assert forbidden not in text, f"{path.name} uses {forbidden}"
