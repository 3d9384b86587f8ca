"""Processing wrapper: restore balance from today's territories while moving as little as possible."""

from __future__ import annotations

import math

import pandas as pd
import pulp  # noqa: F401  (import at module level: see ENV-NOTES #8, empty GeoPackage trap)
from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from ..territory_planner_plugin import network as road_network
from ..territory_planner_plugin import rebalance
from .base import (
    PROJECTED,
    SOLVERS,
    TerritoryPlannerAlgorithm,
    add_manifest_parameters,
    attach_style,
    check_cancelled,
    engine_callbacks,
    engine_run,
    enum_value,
    network_parameter,
    optional_field,
    optional_number,
    parse_number_list,
    sink_parameter,
    solver_parameter,
    source_or_error,
    source_to_gdf,
    start_run_manifest,
    step_feedback,
    time_limit_parameter,
    write_run_manifest,
    write_sink,
)

_Number = QgsProcessingParameterNumber

# (engine value, label): "accounts" minimises the number of moved accounts, "value" the moved value.
MINIMISE_CHOICES = (("accounts", "Accounts moved"), ("value", "Value moved"))


class RebalanceTerritoriesAlgorithm(TerritoryPlannerAlgorithm):
    """Move as few accounts (or as little revenue) as needed to bring territories back in balance."""

    ALGORITHM_ID = "rebalanceterritories"
    DISPLAY_NAME = "Rebalance territories"
    GROUP = "Territories"
    GROUP_ID = "territories"

    ACCOUNTS = "ACCOUNTS"
    ID_FIELD = "ID_FIELD"
    CURRENT_FIELD = "CURRENT_FIELD"
    REPS = "REPS"
    REP_ID_FIELD = "REP_ID_FIELD"
    REP_CAPACITY_FIELD = "REP_CAPACITY_FIELD"
    REP_MAX_MINUTES = "REP_MAX_MINUTES"
    BALANCE_FIELDS = "BALANCE_FIELDS"
    BALANCE_WEIGHTS = "BALANCE_WEIGHTS"
    TOLERANCE = "TOLERANCE"
    LOCK_FIELD = "LOCK_FIELD"
    MAX_MOVES = "MAX_MOVES"
    MINIMISE = "MINIMISE"
    MINIMISE_FIELD = "MINIMISE_FIELD"
    NETWORK = "NETWORK"
    TIME_LIMIT = "TIME_LIMIT"
    SOLVER = "SOLVER"
    MANIFEST = "MANIFEST"
    OUTPUT_MANIFEST = "OUTPUT_MANIFEST"
    OUTPUT_ACCOUNTS = "OUTPUT_ACCOUNTS"
    OUTPUT_TERRITORIES = "OUTPUT_TERRITORIES"
    OUTPUT_CENTRES = "OUTPUT_CENTRES"
    OUTPUT_SUMMARY = "OUTPUT_SUMMARY"
    OUTPUT_MOVES = "OUTPUT_MOVES"
    NUMERIC_OUTPUTS = (
        ("OBJECTIVE", "objective", "Objective value (accounts or value moved)"),
        ("LOWER_BOUND", "lower_bound", "Lower bound of the objective"),
        ("GAP_PCT", "gap_pct", "Optimality gap (%)"),
        ("MAX_DEVIATION_PCT", "max_deviation_pct", "Largest balance deviation (%)"),
        ("MOVED", "moved", "Accounts moved from their current territory"),
    )
    MOVES_LOWER_BOUND = "MOVES_LOWER_BOUND"

    def initAlgorithm(self, config=None) -> None:
        point = [QgsProcessing.TypeVectorPoint]
        numeric = QgsProcessingParameterField.Numeric
        add = self.addParameter
        add(QgsProcessingParameterFeatureSource(self.ACCOUNTS, self.tr("Accounts (points)"), point))
        add(
            QgsProcessingParameterField(
                self.ID_FIELD, self.tr("Account id field"), None, self.ACCOUNTS
            )
        )
        add(
            QgsProcessingParameterField(
                self.CURRENT_FIELD,
                self.tr("Current territory field (today's territory or rep of each account)"),
                None,
                self.ACCOUNTS,
            )
        )
        add(
            QgsProcessingParameterFeatureSource(
                self.REPS,
                self.tr("Reps (empty = keep today's territories)"),
                point,
                None,
                True,
            )
        )
        add(
            QgsProcessingParameterField(
                self.REP_ID_FIELD, self.tr("Rep id field"), None, self.REPS, optional=True
            )
        )
        add(
            QgsProcessingParameterField(
                self.REP_CAPACITY_FIELD,
                self.tr("Rep capacity field (relative size)"),
                None,
                self.REPS,
                numeric,
                optional=True,
            )
        )
        add(
            _Number(
                self.REP_MAX_MINUTES,
                self.tr("Longest drive from a rep to an account (minutes)"),
                _Number.Double,
                None,
                True,
                0.0,
            )
        )
        add(
            QgsProcessingParameterField(
                self.BALANCE_FIELDS,
                self.tr("Fields to balance (e.g. revenue, visits)"),
                None,
                self.ACCOUNTS,
                numeric,
                allowMultiple=True,
                optional=True,
            )
        )
        add(
            QgsProcessingParameterString(
                self.BALANCE_WEIGHTS,
                self.tr("Weights of those fields (e.g. 40,30)"),
                None,
                False,
                True,
            )
        )
        add(
            _Number(
                self.TOLERANCE,
                self.tr("Allowed imbalance (%)"),
                _Number.Double,
                5.0,
                False,
                0.0,
                100.0,
            )
        )
        add(
            QgsProcessingParameterField(
                self.LOCK_FIELD,
                self.tr("Lock field (territory an account must stay in)"),
                None,
                self.ACCOUNTS,
                optional=True,
            )
        )
        add(
            _Number(
                self.MAX_MOVES,
                self.tr("Most accounts that may change territory (%)"),
                _Number.Double,
                None,
                True,
                0.0,
                100.0,
            )
        )
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
                numeric,
                optional=True,
            )
        )
        add(
            network_parameter(
                optional=True, description=self.tr("Road network (empty = straight lines)")
            )
        )
        add(time_limit_parameter())
        add(solver_parameter())
        add(
            sink_parameter(
                self.OUTPUT_ACCOUNTS,
                self.tr("Accounts with territory"),
                QgsProcessing.TypeVectorPoint,
            )
        )
        add(
            sink_parameter(
                self.OUTPUT_TERRITORIES, self.tr("Territories"), QgsProcessing.TypeVectorPolygon
            )
        )
        add(
            sink_parameter(
                self.OUTPUT_CENTRES,
                self.tr("Territory centres"),
                QgsProcessing.TypeVectorPoint,
                optional=True,
            )
        )
        add(
            sink_parameter(
                self.OUTPUT_SUMMARY,
                self.tr("Territory summary"),
                QgsProcessing.TypeVector,
                optional=True,
            )
        )
        add(sink_parameter(self.OUTPUT_MOVES, self.tr("Moves"), QgsProcessing.TypeVector))
        add_manifest_parameters(self)
        for key, _, label in self.NUMERIC_OUTPUTS:
            self.addOutput(QgsProcessingOutputNumber(key, self.tr(label)))
        self.addOutput(
            QgsProcessingOutputNumber(
                self.MOVES_LOWER_BOUND, self.tr("Proven lower bound of the moves needed")
            )
        )

    @engine_run
    def processAlgorithm(self, parameters, context, feedback):
        accounts_source = source_or_error(self, parameters, self.ACCOUNTS, context)
        reps_source = self.parameterAsSource(parameters, self.REPS, context)
        id_field = self.parameterAsFields(parameters, self.ID_FIELD, context)[0]
        current_field = optional_field(self, parameters, self.CURRENT_FIELD, context)
        balance_fields = self.parameterAsFields(parameters, self.BALANCE_FIELDS, context)
        weights_text = self.parameterAsString(parameters, self.BALANCE_WEIGHTS, context)
        network_path = self.parameterAsFile(parameters, self.NETWORK, context)
        minimise = enum_value(self, parameters, self.MINIMISE, context, MINIMISE_CHOICES)
        minimise_field = optional_field(self, parameters, self.MINIMISE_FIELD, context)
        options = {
            "rep_id_field": optional_field(self, parameters, self.REP_ID_FIELD, context),
            "rep_capacity_field": optional_field(
                self, parameters, self.REP_CAPACITY_FIELD, context
            ),
            "rep_max_minutes": optional_number(self, parameters, self.REP_MAX_MINUTES, context),
            "tolerance_pct": self.parameterAsDouble(parameters, self.TOLERANCE, context),
            "lock_field": optional_field(self, parameters, self.LOCK_FIELD, context),
            "max_moves_pct": optional_number(self, parameters, self.MAX_MOVES, context),
            "time_limit_s": self.parameterAsDouble(parameters, self.TIME_LIMIT, context),
            "solver": enum_value(self, parameters, self.SOLVER, context, SOLVERS),
        }

        if not current_field:
            raise QgsProcessingException(
                "CURRENT_FIELD: choose the field holding each account's territory (or rep) today; "
                "to plan from scratch use designterritories."
            )
        if parameters.get(self.REPS) not in (None, "") and reps_source is None:
            raise QgsProcessingException(self.invalidSourceError(parameters, self.REPS))
        if reps_source is not None and not options["rep_id_field"]:
            raise QgsProcessingException("REP_ID_FIELD: choose the field that identifies each rep.")
        if minimise == "value" and not minimise_field:
            raise QgsProcessingException(
                "MINIMISE_FIELD: 'Value moved' needs the numeric field to count (e.g. revenue); "
                "choose it, or set MINIMISE to 'Accounts moved'."
            )
        if minimise == "accounts" and minimise_field:
            feedback.pushInfo(
                f"MINIMISE is 'Accounts moved': MINIMISE_FIELD '{minimise_field}' is not used."
            )
            minimise_field = None
        weights = parse_number_list(weights_text, self.BALANCE_WEIGHTS, positive=False) or None
        if weights is not None and len(weights) != len(balance_fields):
            raise QgsProcessingException(
                f"BALANCE_WEIGHTS has {len(weights)} value(s) but BALANCE_FIELDS has "
                f"{len(balance_fields)} field(s): give one weight per field, in the same order."
            )

        steps = step_feedback(feedback, 3)
        progress, is_cancelled = engine_callbacks(steps, root=feedback)
        net = None
        if network_path:
            net = road_network.load_network(
                network_path, progress=progress, is_cancelled=is_cancelled
            )
        steps.setCurrentStep(1)
        target = net.crs if net is not None else PROJECTED  # metres for the engine
        accounts = source_to_gdf(
            accounts_source, feedback=steps, name="ACCOUNTS", target_crs=target, points=True
        )
        if minimise_field:
            _check_minimise_field(accounts, minimise_field, id_field)
        reps = None
        if reps_source is not None:
            reps = source_to_gdf(
                reps_source, feedback=steps, name="REPS", target_crs=accounts.crs, points=True
            )
        steps.setCurrentStep(2)
        manifest_run = start_run_manifest(
            self, parameters, context, feedback,
            frames={self.ACCOUNTS: accounts, self.REPS: reps}, files={self.NETWORK: network_path},
        )  # fmt: skip
        result = rebalance.rebalance_territories(
            accounts,
            id_field=id_field,
            current_field=current_field,
            reps=reps,
            balance_fields=tuple(balance_fields),
            balance_weights=weights,
            minimise_field=minimise_field,
            network=net,
            progress=progress,
            is_cancelled=is_cancelled,
            **options,
        )
        check_cancelled(feedback)
        plan = result.plan

        results = {}
        for key, frame, kind in (
            (self.OUTPUT_ACCOUNTS, plan.accounts, "accounts"),
            (self.OUTPUT_TERRITORIES, plan.territories, "territories"),
            (self.OUTPUT_CENTRES, plan.centres, "centres"),
            (self.OUTPUT_SUMMARY, plan.summary, "summary"),
        ):
            is_table = key == self.OUTPUT_SUMMARY
            results[key] = write_sink(
                self, parameters, key, context, frame, feedback=feedback, geometry=not is_table
            )
            attach_style(context, results[key], kind)
        results[self.OUTPUT_MOVES] = write_sink(
            self, parameters, self.OUTPUT_MOVES, context, _moves_table(result.moves),
            feedback=feedback, geometry=False,
        )  # fmt: skip
        for key, attribute, label in self.NUMERIC_OUTPUTS:
            results[key] = _finite(getattr(plan, attribute, None))
            feedback.pushInfo(f"{label}: {results[key]}")
        results[self.MOVES_LOWER_BOUND] = _finite(result.moves_lower_bound)
        _report_moves(feedback, result.moves, results, minimise_field)
        manifest_run.extra["moves_lower_bound"] = results[self.MOVES_LOWER_BOUND]
        return write_run_manifest(manifest_run, plan, results, feedback, id_field=id_field)


def _finite(value) -> float | None:
    """A float for a numeric output, None (NULL) for a missing or NaN value (e.g. no bound)."""
    return float(value) if value is not None and math.isfinite(float(value)) else None


def _report_moves(feedback, moves: pd.DataFrame, results: dict, minimise_field: str | None) -> None:
    """One plain summary line: what moved, the proven minimum, new accounts and handovers."""
    bound = results["MOVES_LOWER_BOUND"]
    bound_text = "" if bound is None else f"; no plan within TOLERANCE moves less than {bound:g}"
    if minimise_field:
        text = f"Value moved ({minimise_field}): {results['OBJECTIVE']:g}{bound_text}"
    else:
        text = f"Accounts moved: {results['MOVED']:g}{bound_text}"
    counts = moves["reason"].value_counts()
    feedback.pushInfo(
        f"{text}. New accounts placed: {int(counts.get('new account', 0))}; accounts of reps who "
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
        },
        columns=list(rebalance.MOVE_COLUMNS),
    )
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
