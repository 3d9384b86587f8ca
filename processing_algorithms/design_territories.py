"""Processing wrapper: design balanced, compact sales territories from accounts (and reps)."""

from __future__ import annotations

import math

import pulp  # noqa: F401  (import at module level: see ENV-NOTES #8, empty GeoPackage trap)
from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from ..territory_planner_plugin import network as road_network
from ..territory_planner_plugin import territories
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
    seed_parameter,
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


class DesignTerritoriesAlgorithm(TerritoryPlannerAlgorithm):
    """Assign accounts to K territories (or to reps) with balanced workload and short drives."""

    ALGORITHM_ID = "designterritories"
    DISPLAY_NAME = "Design territories"
    GROUP = "Territories"
    GROUP_ID = "territories"

    ACCOUNTS = "ACCOUNTS"
    ID_FIELD = "ID_FIELD"
    TERRITORIES = "TERRITORIES"
    REPS = "REPS"
    REP_ID_FIELD = "REP_ID_FIELD"
    REP_CAPACITY_FIELD = "REP_CAPACITY_FIELD"
    REP_MAX_MINUTES = "REP_MAX_MINUTES"
    BALANCE_FIELDS = "BALANCE_FIELDS"
    BALANCE_WEIGHTS = "BALANCE_WEIGHTS"
    TRAVEL_WEIGHT = "TRAVEL_WEIGHT"
    TOLERANCE = "TOLERANCE"
    LOCK_FIELD = "LOCK_FIELD"
    CURRENT_FIELD = "CURRENT_FIELD"
    MAX_MOVES = "MAX_MOVES"
    NETWORK = "NETWORK"
    QUOTA_TOTAL = "QUOTA_TOTAL"
    SEED = "SEED"
    TIME_LIMIT = "TIME_LIMIT"
    SOLVER = "SOLVER"
    MANIFEST = "MANIFEST"
    OUTPUT_MANIFEST = "OUTPUT_MANIFEST"
    OUTPUT_ACCOUNTS = "OUTPUT_ACCOUNTS"
    OUTPUT_TERRITORIES = "OUTPUT_TERRITORIES"
    OUTPUT_CENTRES = "OUTPUT_CENTRES"
    OUTPUT_SUMMARY = "OUTPUT_SUMMARY"
    NUMERIC_OUTPUTS = (
        ("OBJECTIVE", "objective", "Objective value"),
        ("LOWER_BOUND", "lower_bound", "Lower bound of the objective"),
        ("GAP_PCT", "gap_pct", "Optimality gap (%)"),
        ("MAX_DEVIATION_PCT", "max_deviation_pct", "Largest balance deviation (%)"),
        ("MOVED", "moved", "Accounts moved from their current territory"),
    )

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
            _Number(
                self.TERRITORIES,
                self.tr("Number of territories (empty = one per rep)"),
                _Number.Integer,
                None,
                True,
                1,
            )
        )
        add(
            QgsProcessingParameterFeatureSource(
                self.REPS, self.tr("Reps (home or office points)"), point, None, True
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
                self.TRAVEL_WEIGHT,
                self.tr("Weight of travel balance in the combined score"),
                _Number.Double,
                1.0,
                False,
                0.0,
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
            QgsProcessingParameterField(
                self.CURRENT_FIELD,
                self.tr("Current territory field"),
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
            network_parameter(
                optional=True, description=self.tr("Road network (empty = straight lines)")
            )
        )
        add(
            _Number(
                self.QUOTA_TOTAL,
                self.tr("Total quota to split over the territories"),
                _Number.Double,
                None,
                True,
                0.0,
            )
        )
        add(seed_parameter())
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
        add_manifest_parameters(self)
        for key, _, label in self.NUMERIC_OUTPUTS:
            self.addOutput(QgsProcessingOutputNumber(key, self.tr(label)))

    @engine_run
    def processAlgorithm(self, parameters, context, feedback):
        accounts_source = source_or_error(self, parameters, self.ACCOUNTS, context)
        reps_source = self.parameterAsSource(parameters, self.REPS, context)
        id_field = self.parameterAsFields(parameters, self.ID_FIELD, context)[0]
        n_territories = optional_number(self, parameters, self.TERRITORIES, context)
        balance_fields = self.parameterAsFields(parameters, self.BALANCE_FIELDS, context)
        weights_text = self.parameterAsString(parameters, self.BALANCE_WEIGHTS, context)
        network_path = self.parameterAsFile(parameters, self.NETWORK, context)
        options = {
            "rep_id_field": optional_field(self, parameters, self.REP_ID_FIELD, context),
            "rep_capacity_field": optional_field(
                self, parameters, self.REP_CAPACITY_FIELD, context
            ),
            "rep_max_minutes": optional_number(self, parameters, self.REP_MAX_MINUTES, context),
            "travel_weight": self.parameterAsDouble(parameters, self.TRAVEL_WEIGHT, context),
            "tolerance_pct": self.parameterAsDouble(parameters, self.TOLERANCE, context),
            "lock_field": optional_field(self, parameters, self.LOCK_FIELD, context),
            "current_field": optional_field(self, parameters, self.CURRENT_FIELD, context),
            "max_moves_pct": optional_number(self, parameters, self.MAX_MOVES, context),
            "quota_total": optional_number(self, parameters, self.QUOTA_TOTAL, context),
            "seed": self.parameterAsInt(parameters, self.SEED, context),
            "time_limit_s": self.parameterAsDouble(parameters, self.TIME_LIMIT, context),
            "solver": enum_value(self, parameters, self.SOLVER, context, SOLVERS),
        }

        if parameters.get(self.REPS) not in (None, "") and reps_source is None:
            raise QgsProcessingException(self.invalidSourceError(parameters, self.REPS))
        if reps_source is None and n_territories is None:
            raise QgsProcessingException(
                "Set TERRITORIES (how many territories) or give a REPS layer."
            )
        if reps_source is not None and not options["rep_id_field"]:
            raise QgsProcessingException("REP_ID_FIELD: choose the field that identifies each rep.")
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
        plan = territories.design_territories(
            accounts,
            id_field=id_field,
            n_territories=None if n_territories is None else int(n_territories),
            reps=reps,
            balance_fields=tuple(balance_fields),
            balance_weights=weights,
            network=net,
            progress=progress,
            is_cancelled=is_cancelled,
            **options,
        )
        check_cancelled(feedback)

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
        for key, attribute, label in self.NUMERIC_OUTPUTS:
            value = getattr(plan, attribute, None)
            finite = value is not None and math.isfinite(float(value))
            results[key] = float(value) if finite else None  # NaN (e.g. no bound) -> NULL
            feedback.pushInfo(f"{label}: {results[key]}")
        return write_run_manifest(manifest_run, plan, results, feedback, id_field=id_field)
