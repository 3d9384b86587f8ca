"""What the planning wrappers (designterritories, rebalanceterritories) share.

:class:`PlanningAlgorithm` builds their common parameters (accounts, reps, balance, tolerance,
locks, moves budget, network and the four plan outputs), reads them into :class:`PlanInputs`,
loads the layers and the network, and writes a plan's outputs with styles and numeric results.
Each algorithm keeps its own parameters, checks and engine call in its module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from .base import (
    PROJECTED,
    SOLVERS,
    RunManifest,
    TerritoryPlannerAlgorithm,
    add_manifest_parameters,
    attach_style,
    enum_value,
    field_names,
    network_parameter,
    network_steps,
    optional_field,
    optional_number,
    parse_number_list,
    sink_parameter,
    source_or_error,
    source_to_gdf,
    start_run_manifest,
    write_sink,
)

_Number = QgsProcessingParameterNumber


@dataclass
class PlanInputs:
    """The shared parameters of a planning run, then (load_plan_layers) its layers and network."""

    accounts_source: Any
    reps_source: Any
    id_field: str
    balance_fields: list
    weights_text: str
    network_path: str
    options: dict  # engine keyword arguments; an algorithm adds its own
    weights: list | None = None
    accounts: Any = None
    reps: Any = None
    network: Any = None
    manifest: RunManifest | None = None
    progress: Callable | None = None
    is_cancelled: Callable | None = None

    def engine_arguments(self) -> dict:
        """Keyword arguments for the engine call (all but the accounts frame)."""
        return {
            "id_field": self.id_field,
            "reps": self.reps,
            "balance_fields": tuple(self.balance_fields),
            "balance_weights": self.weights,
            "network": self.network,
            "progress": self.progress,
            "is_cancelled": self.is_cancelled,
            **self.options,
        }


def finite(value) -> float | None:
    """A float for a numeric output, None (NULL) for a missing or NaN value (e.g. no bound)."""
    return float(value) if value is not None and math.isfinite(float(value)) else None


class PlanningAlgorithm(TerritoryPlannerAlgorithm):
    """Parameters, reading, loading and outputs shared by the territory planning algorithms."""

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
    NETWORK = "NETWORK"
    TIME_LIMIT = "TIME_LIMIT"
    SOLVER = "SOLVER"
    MANIFEST = "MANIFEST"
    OUTPUT_MANIFEST = "OUTPUT_MANIFEST"
    OUTPUT_ACCOUNTS = "OUTPUT_ACCOUNTS"
    OUTPUT_TERRITORIES = "OUTPUT_TERRITORIES"
    OUTPUT_CENTRES = "OUTPUT_CENTRES"
    OUTPUT_SUMMARY = "OUTPUT_SUMMARY"
    # (output key, plan attribute, label)
    NUMERIC_OUTPUTS = (
        ("OBJECTIVE", "objective", "Objective value"),
        ("LOWER_BOUND", "lower_bound", "Lower bound of the objective"),
        ("GAP_PCT", "gap_pct", "Optimality gap (%)"),
        ("MAX_DEVIATION_PCT", "max_deviation_pct", "Largest balance deviation (%)"),
        ("MOVED", "moved", "Accounts moved from their current territory"),
    )

    # ---------------------------------------------------------------- parameters (dialog order)
    def add_account_parameters(self) -> None:
        """ACCOUNTS, ID_FIELD."""
        point = [QgsProcessing.TypeVectorPoint]
        self.addParameter(
            QgsProcessingParameterFeatureSource(self.ACCOUNTS, self.tr("Accounts (points)"), point)
        )
        self.addParameter(
            QgsProcessingParameterField(
                self.ID_FIELD, self.tr("Account id field"), None, self.ACCOUNTS
            )
        )

    def add_rep_and_balance_parameters(self, reps_description: str) -> None:
        """REPS, REP_ID_FIELD, REP_CAPACITY_FIELD, REP_MAX_MINUTES, BALANCE_FIELDS/_WEIGHTS."""
        numeric = QgsProcessingParameterField.Numeric
        add = self.addParameter
        add(
            QgsProcessingParameterFeatureSource(
                self.REPS, reps_description, [QgsProcessing.TypeVectorPoint], None, True
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

    def add_tolerance_and_lock_parameters(self) -> None:
        """TOLERANCE, LOCK_FIELD."""
        self.addParameter(
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
        self.addParameter(
            QgsProcessingParameterField(
                self.LOCK_FIELD,
                self.tr("Lock field (territory an account must stay in)"),
                None,
                self.ACCOUNTS,
                optional=True,
            )
        )

    def add_max_moves_parameter(self) -> None:
        """MAX_MOVES."""
        self.addParameter(
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

    def add_network_parameter(self) -> None:
        """NETWORK (optional: straight lines without it)."""
        self.addParameter(
            network_parameter(
                optional=True, description=self.tr("Road network (empty = straight lines)")
            )
        )

    def add_plan_outputs(self, *extra_sinks) -> None:
        """The four plan sinks, ``extra_sinks``, MANIFEST/OUTPUT_MANIFEST and NUMERIC_OUTPUTS."""
        add = self.addParameter
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
        for sink in extra_sinks:
            add(sink)
        add_manifest_parameters(self)
        for key, _, label in self.NUMERIC_OUTPUTS:
            self.addOutput(QgsProcessingOutputNumber(key, self.tr(label)))

    # ---------------------------------------------------------------- running
    def read_plan_inputs(self, parameters, context) -> PlanInputs:
        """The shared parameters (an unreadable ACCOUNTS layer or SOLVER raises here)."""
        return PlanInputs(
            accounts_source=source_or_error(self, parameters, self.ACCOUNTS, context),
            reps_source=self.parameterAsSource(parameters, self.REPS, context),
            id_field=field_names(self, parameters, self.ID_FIELD, context)[0],
            balance_fields=field_names(self, parameters, self.BALANCE_FIELDS, context),
            weights_text=self.parameterAsString(parameters, self.BALANCE_WEIGHTS, context),
            network_path=self.parameterAsFile(parameters, self.NETWORK, context),
            options={
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
            },
        )

    def check_reps(self, parameters, inputs: PlanInputs) -> None:
        """A REPS layer that cannot be read, or REPS without REP_ID_FIELD, is an error."""
        if parameters.get(self.REPS) not in (None, "") and inputs.reps_source is None:
            raise QgsProcessingException(self.invalidSourceError(parameters, self.REPS))
        if inputs.reps_source is not None and not inputs.options["rep_id_field"]:
            raise QgsProcessingException("REP_ID_FIELD: choose the field that identifies each rep.")

    def balance_weights(self, inputs: PlanInputs) -> list | None:
        """BALANCE_WEIGHTS as numbers (None when empty), one per BALANCE_FIELDS field."""
        weights = parse_number_list(inputs.weights_text, self.BALANCE_WEIGHTS, positive=False)
        if weights and len(weights) != len(inputs.balance_fields):
            raise QgsProcessingException(
                f"BALANCE_WEIGHTS has {len(weights)} value(s) but BALANCE_FIELDS has "
                f"{len(inputs.balance_fields)} field(s): give one weight per field, in the same "
                "order."
            )
        return weights or None

    def load_plan_layers(
        self,
        inputs: PlanInputs,
        parameters,
        context,
        feedback,
        *,
        check_accounts: Callable[[Any], None] | None = None,
    ) -> None:
        """Load the network and the layers into ``inputs`` and start the run manifest.

        Accounts are projected to the network's CRS (a local metric CRS without one), reps to
        the accounts' CRS; ``check_accounts(accounts)`` runs before the reps are read.
        """
        steps, inputs.progress, inputs.is_cancelled, net = network_steps(
            feedback, inputs.network_path
        )
        target = net.crs if net is not None else PROJECTED  # metres for the engine
        accounts = source_to_gdf(
            inputs.accounts_source, feedback=steps, name="ACCOUNTS", target_crs=target, points=True
        )
        if check_accounts is not None:
            check_accounts(accounts)
        reps = None
        if inputs.reps_source is not None:
            reps = source_to_gdf(
                inputs.reps_source,
                feedback=steps,
                name="REPS",
                target_crs=accounts.crs,
                points=True,
            )
        steps.setCurrentStep(2)
        inputs.network, inputs.accounts, inputs.reps = net, accounts, reps
        inputs.manifest = start_run_manifest(
            self, parameters, context, feedback,
            frames={self.ACCOUNTS: accounts, self.REPS: reps},
            files={self.NETWORK: inputs.network_path},
        )  # fmt: skip

    def write_plan_outputs(self, parameters, context, feedback, plan, tables=None) -> dict:
        """Write the four plan sinks (styled), then ``tables`` ({key: frame}), then the numbers."""
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
        for key, frame in (tables or {}).items():
            results[key] = write_sink(
                self, parameters, key, context, frame, feedback=feedback, geometry=False
            )
        for key, attribute, label in self.NUMERIC_OUTPUTS:
            results[key] = finite(getattr(plan, attribute, None))  # NaN (e.g. no bound) -> NULL
            feedback.pushInfo(f"{label}: {results[key]}")
        return results
