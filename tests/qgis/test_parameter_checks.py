"""checkParameterValues: every refused value names the parameter, its allowed range or form and
the value given, instead of QGIS's bare "Incorrect parameter value for X" (issue 14)."""

from __future__ import annotations

import re

import pytest

ACCOUNTS = {"ACCOUNTS": "a.gpkg", "ID_FIELD": "id", "BALANCE_FIELDS": "revenue", "INPUT": "a.gpkg",
            "ORIGINS": "a.gpkg", "ORIGIN_ID_FIELD": "id", "DESTINATIONS": "r.gpkg",
            "DESTINATION_ID_FIELD": "id", "TERRITORY_FIELD": "territory_id", "NETWORK": "n.gpkg"}  # fmt: skip
CASES = [
    ("designterritories", "TOLERANCE", 200, r"TOLERANCE must be a number from 0 to 100.*got 200"),
    ("designterritories", "TOLERANCE", -1, r"TOLERANCE must be a number from 0 to 100.*got -1"),
    ("designterritories", "TERRITORIES", 2.5, r"TERRITORIES must be a whole number of at least 1"
     r".*got 2\.5"),
    ("designterritories", "TERRITORIES", 0, r"TERRITORIES must be a whole number of at least 1"),
    ("designterritories", "REP_MAX_MINUTES", 0, r"REP_MAX_MINUTES must be a number greater than 0"
     r" \(minutes\).*got 0"),
    ("designterritories", "TIME_LIMIT", 0, r"TIME_LIMIT must be a number of at least 1 "
     r"\(seconds\).*got 0"),
    ("designterritories", "SEED", "x", r"SEED must be a whole number of at least 0.*got 'x'"),
    ("designterritories", "SOLVER", 4, r"SOLVER must be one of 0 = CBC.*1 = HiGHS.*got 4"),
    ("designterritories", "BALANCE_WEIGHTS", "2,abc", r"BALANCE_WEIGHTS: 'abc' is not a number.*"
     r"like 2,1"),
    ("rebalanceterritories", "MAX_MOVES", 150, r"MAX_MOVES must be a number from 0 to 100"),
    ("drivetimecatchments", "MAX_SNAP", -5, r"MAX_SNAP must be a number greater than 0 \(metres\)"
     r", like 500 \(got -5\)"),
    ("drivetimecatchments", "MAX_SNAP", 0, r"MAX_SNAP must be a number greater than 0"),
    ("drivetimecatchments", "BANDS", "5,-10", r"BANDS: every value must be a number greater than 0"
     r" \(got '-10'\), like 5,10,15"),
    ("drivetimecatchments", "SHAPE", 9, r"SHAPE must be one of 0 = Convex hull.*got 9"),
    ("traveltimematrix", "MAX_MINUTES", 0, r"MAX_MINUTES must be a number greater than 0"),
    ("checkaccounts", "OUTLIER_Z", 0, r"OUTLIER_Z must be a number of at least 0\.1"),
    ("exportterritories", "FORMAT", 12, r"FORMAT must be one of 0 = ESRI Shapefile"),
]  # fmt: skip


def _alg(alg_id: str):
    from qgis.core import QgsApplication

    return QgsApplication.processingRegistry().algorithmById(f"territory_planner:{alg_id}")


@pytest.mark.parametrize(("alg_id", "key", "value", "pattern"), CASES,
                         ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in CASES])  # fmt: skip
def test_refused_value_says_the_range(territory_provider, alg_id, key, value, pattern):
    from qgis.core import QgsProcessingContext

    ok, message = _alg(alg_id).checkParameterValues({**ACCOUNTS, key: value},
                                                    QgsProcessingContext())  # fmt: skip
    assert not ok
    assert re.search(pattern, message), message
    assert "Incorrect parameter value" not in message


@pytest.mark.parametrize(("key", "value"), [("TOLERANCE", 0), ("TOLERANCE", 100),
                         ("TERRITORIES", 3), ("TIME_LIMIT", 1), ("REP_MAX_MINUTES", 0.5),
                         ("REP_MAX_MINUTES", None), ("BALANCE_WEIGHTS", "2,1"), ("SEED", "7")])  # fmt: skip
def test_values_in_range_are_not_refused_by_the_range_check(territory_provider, key, value):
    from qgis.core import QgsProcessingContext
    from territory_planner.processing_algorithms.base import parameter_problem

    definition = _alg("designterritories").parameterDefinition(key)
    assert parameter_problem(definition, value, QgsProcessingContext()) == ""


def test_a_missing_value_is_named_as_required(territory_provider):
    from qgis.core import QgsProcessingContext

    params = {k: v for k, v in ACCOUNTS.items() if k != "ORIGIN_ID_FIELD"}
    ok, message = _alg("traveltimematrix").checkParameterValues(params, QgsProcessingContext())
    assert not ok
    assert re.search(r"ORIGIN_ID_FIELD \(Origins id field\) is required", message), message
