"""Processing wrapper: restore balance from today's territories while moving as little as possible."""

from __future__ import annotations

from functools import partial

import pandas as pd
import pulp  # noqa: F401  (import at module level: see ENV-NOTES #8, empty GeoPackage trap)
from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterEnum,
    QgsProcessingParameterField,
)

from ..territory_planner_plugin import coverage, rebalance
from .base import (
    check_cancelled,
    engine_run,
    enum_value,
    sink_parameter,
    solver_parameter,
    time_limit_parameter,
    write_run_manifest,
)
from .planning import PlanningAlgorithm, finite

# (engine value, label): "accounts" minimises the number of moved accounts, "value" the moved value.
MINIMISE_CHOICES = (("accounts", "Accounts moved"), ("value", "Value moved"))


class RebalanceTerritoriesAlgorithm(PlanningAlgorithm):
    """Move as few accounts or units (or as little value) as needed to restore the balance."""

    ALGORITHM_ID = "rebalanceterritories"
    DISPLAY_NAME = "Rebalance territories"

    MINIMISE = "MINIMISE"
    MINIMISE_FIELD = "MINIMISE_FIELD"
    UNIT_MINIMISE_FIELD = "UNIT_MINIMISE_FIELD"
    OUTPUT_MOVES = "OUTPUT_MOVES"
    NUMERIC_OUTPUTS = (
        ("OBJECTIVE", "objective", "Objective value (accounts or value moved)"),
        *PlanningAlgorithm.NUMERIC_OUTPUTS[1:],
    )
    MOVES_LOWER_BOUND = "MOVES_LOWER_BOUND"

    def initAlgorithm(self, config=None) -> None:
        add = self.addParameter
        self.add_account_parameters()
        self.add_current_field_parameters(
            self.tr("Current territory field (today's territory or rep of each account)")
        )
        self.add_rep_and_balance_parameters(self.tr("Reps (empty = keep today's territories)"))
        self.add_tolerance_and_lock_parameters()
        self.add_max_moves_parameter()
        self.add_contiguity_parameters()
        add(
            QgsProcessingParameterEnum(
                self.MINIMISE,
                self.tr("Move as few as possible of"),
                [label for _, label in MINIMISE_CHOICES],
                False,
                0,
            )
        )
        add(
            QgsProcessingParameterField(
                self.MINIMISE_FIELD,
                self.tr("Value field for 'Value moved' (e.g. revenue)"),
                None,
                self.ACCOUNTS,
                QgsProcessingParameterField.Numeric,
                optional=True,
            )
        )
        add(
            QgsProcessingParameterField(
                self.UNIT_MINIMISE_FIELD,
                self.tr("Value field of the units for 'Value moved' (units without accounts)"),
                None,
                self.UNITS,
                QgsProcessingParameterField.Numeric,
                optional=True,
            )
        )
        self.add_network_parameter()
        self.add_coverage_parameters()
        self.add_group_parameters()
        add(time_limit_parameter())
        add(solver_parameter())
        self.add_plan_outputs(
            sink_parameter(self.OUTPUT_MOVES, self.tr("Moves"), QgsProcessing.TypeVector)
        )
        self.addOutput(
            QgsProcessingOutputNumber(
                self.MOVES_LOWER_BOUND, self.tr("Proven lower bound of the moves needed")
            )
        )

    @engine_run
    def processAlgorithm(self, parameters, context, feedback):
        inputs = self.read_plan_inputs(parameters, context)
        current_field = self.current_field(parameters, context, inputs)
        minimise = enum_value(self, parameters, self.MINIMISE, context, MINIMISE_CHOICES)
        fields = self._level_fields(
            parameters, context, self.MINIMISE_FIELD, self.UNIT_MINIMISE_FIELD,
            inputs.accounts_source,
        )  # fmt: skip
        minimise_field = fields[0] if fields else None
        if not current_field:
            key, what = (
                (self.CURRENT_FIELD, "account")
                if inputs.accounts_source is not None
                else (self.UNIT_CURRENT_FIELD, "unit")
            )
            raise QgsProcessingException(
                f"{key}: choose the field holding each {what}'s territory (or rep) today; "
                "to plan from scratch use designterritories."
            )
        self.check_reps(parameters, inputs)
        cover = self.read_coverage(parameters, context)
        self.check_coverage(cover)
        groups = self.read_group_options(parameters, context, inputs)
        if minimise == "value" and not minimise_field:
            raise QgsProcessingException(
                "MINIMISE_FIELD: 'Value moved' needs the numeric field to count (e.g. revenue; "
                "UNIT_MINIMISE_FIELD for units without accounts); choose it, or set MINIMISE to "
                "'Accounts moved'."
            )
        if minimise == "accounts" and minimise_field:
            feedback.pushInfo(
                f"MINIMISE is 'Accounts moved': MINIMISE_FIELD '{minimise_field}' is not used."
            )
            minimise_field = None
        inputs.weights = self.balance_weights(inputs)

        def check_accounts(accounts):
            if minimise_field:
                _check_minimise_field(accounts, minimise_field, inputs.id_field)

        self.load_plan_layers(inputs, parameters, context, feedback, check_accounts=check_accounts)
        with self.unit_field_names(inputs):
            run = (
                partial(coverage.rebalance_coverage, coverage=cover)
                if cover.active
                else rebalance.rebalance_territories
            )
            result = self.run_grouped(
                run, inputs, groups, current_field=current_field, minimise_field=minimise_field
            )
            plan = result.plan
            region_dev = self.apply_regions(plan, inputs, groups, feedback)
        check_cancelled(feedback)

        table = _moves_table(result.moves)
        if getattr(plan, "units", None) is not None:  # whole units move: name them as such
            table = table.rename(columns={"account_id": "unit_id"})
        moves = {self.OUTPUT_MOVES: table}
        results = self.write_plan_outputs(
            parameters, context, feedback, plan, tables=moves, inputs=inputs
        )
        results[self.MOVES_LOWER_BOUND] = finite(result.moves_lower_bound)
        results[self.REGION_MAX_DEVIATION_PCT] = region_dev
        _report_moves(feedback, result.moves, results, minimise_field, plan=plan)
        inputs.manifest.extra["moves_lower_bound"] = results[self.MOVES_LOWER_BOUND]
        recorded, id_field = self.manifest_plan(plan, inputs)
        return write_run_manifest(inputs.manifest, recorded, results, feedback, id_field=id_field)


def _report_moves(
    feedback,
    moves: pd.DataFrame,
    results: dict,
    minimise_field: str | None,
    plan: object = None,
) -> None:
    """One plain summary line: what moved, the proven minimum, new rows and handovers.

    When ``plan`` has units the rows are units: the line counts the units moved (what the bound
    counts) and, with accounts, the accounts in them (MOVED)."""
    units = getattr(plan, "units", None)
    noun = "accounts" if units is None else "units"
    bound = results["MOVES_LOWER_BOUND"]
    bound_text = "" if bound is None else f"; no plan within TOLERANCE moves fewer than {bound:g}"
    if minimise_field:
        text = f"Value moved ({minimise_field}): {results['OBJECTIVE']:g}{bound_text}"
    elif units is None:
        text = f"Accounts moved: {results['MOVED']:g}{bound_text}"
    else:
        n_units = int(units["moved"].sum())
        text = f"Units moved: {n_units}"
        if getattr(plan, "accounts", None) is not None:
            text += f" ({results['MOVED']:g} accounts in them)"
        text += f"{bound_text} units" if bound is not None else ""
    counts = moves["reason"].value_counts()
    feedback.pushInfo(
        f"{text}. New {noun} placed: {int(counts.get('new account', 0))}; {noun} of reps who "
        f"left handed over: {int(counts.get('rep left', 0))}; {len(moves)} row(s) in OUTPUT_MOVES."
    )


def _moves_table(moves: pd.DataFrame) -> pd.DataFrame:
    """The moves with fixed column types (text ids, float value and km), also when empty."""
    table = pd.DataFrame(
        {
            "account_id": moves["account_id"].astype(object),
            "from_id": moves["from_id"].astype(object),
            "to_id": moves["to_id"].astype(object),
            "reason": moves["reason"].astype(object),
            "moved_value": pd.to_numeric(moves["moved_value"]).astype(float),
            "centre_km": pd.to_numeric(moves["centre_km"]).astype(float),
            "explanation": moves["explanation"].astype(object),
        },
        columns=list(rebalance.MOVE_COLUMNS),
    )
    if "tier" in moves.columns:  # coverage models: the tier of each move
        table["tier"] = moves["tier"].astype(object)
    return table.reset_index(drop=True)


def _check_minimise_field(accounts: pd.DataFrame, field: str, id_field: str) -> None:
    """MINIMISE_FIELD must be a number >= 0 for every account (named here, not as a balance field)."""
    values = pd.to_numeric(accounts[field], errors="coerce")
    bad = values.isna() | (values < 0)
    if bad.any():
        ids = accounts.loc[bad, id_field].astype(str).tolist()[:10]
        raise QgsProcessingException(
            f"MINIMISE_FIELD: '{field}' is empty, negative or not a number for accounts {ids}; "
            "fix them (e.g. 0 for no value) or run checkaccounts first."
        )
