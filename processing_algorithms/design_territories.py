"""Processing wrapper: design balanced, compact sales territories from accounts or areas."""

from __future__ import annotations

from functools import partial

import pulp  # noqa: F401  (import at module level: see ENV-NOTES #8, empty GeoPackage trap)
from qgis.core import QgsProcessingException, QgsProcessingParameterNumber

from ..territory_planner_plugin import coverage, territories
from .base import (
    check_cancelled,
    engine_run,
    optional_number,
    seed_parameter,
    solver_parameter,
    time_limit_parameter,
    write_run_manifest,
)
from .planning import PlanningAlgorithm

_Number = QgsProcessingParameterNumber


class DesignTerritoriesAlgorithm(PlanningAlgorithm):
    """Assign accounts or units to K territories (or reps), balanced, compact and in one piece."""

    ALGORITHM_ID = "designterritories"
    DISPLAY_NAME = "Design territories"

    TERRITORIES = "TERRITORIES"
    TRAVEL_WEIGHT = "TRAVEL_WEIGHT"
    QUOTA_TOTAL = "QUOTA_TOTAL"
    SEED = "SEED"

    def initAlgorithm(self, config=None) -> None:
        add = self.addParameter
        self.add_account_parameters()
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
        self.add_rep_and_balance_parameters(self.tr("Reps (home or office points)"))
        add(
            _Number(
                self.TRAVEL_WEIGHT,
                self.tr("Weight of travel balance (0 = off; e.g. 30 next to weights 40,30)"),
                _Number.Double,
                0.0,
                False,
                0.0,
            )
        )
        self.add_tolerance_and_lock_parameters()
        self.add_current_field_parameters(self.tr("Current territory field"))
        self.add_max_moves_parameter()
        self.add_contiguity_parameters()
        self.add_network_parameter()
        self.add_coverage_parameters()
        self.add_group_parameters()
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
        self.add_plan_outputs()

    @engine_run
    def processAlgorithm(self, parameters, context, feedback):
        inputs = self.read_plan_inputs(parameters, context)
        n_territories = optional_number(self, parameters, self.TERRITORIES, context)
        if n_territories is not None and (n_territories != int(n_territories) or n_territories < 1):
            msg = (
                f"TERRITORIES: {n_territories:g} is not a whole number of territories; give a "
                "whole number from 1 up to the number of accounts, e.g. 5."
            )
            raise QgsProcessingException(msg)
        inputs.options.update(
            travel_weight=self.parameterAsDouble(parameters, self.TRAVEL_WEIGHT, context),
            current_field=self.current_field(parameters, context, inputs),
            quota_total=optional_number(self, parameters, self.QUOTA_TOTAL, context),
            seed=self.parameterAsInt(parameters, self.SEED, context),
        )
        self.check_reps(parameters, inputs)
        cover = self.read_coverage(parameters, context)
        self.check_coverage(cover)
        groups = self.read_group_options(parameters, context, inputs)
        if inputs.reps_source is None and n_territories is None:
            raise QgsProcessingException(
                "Set TERRITORIES (how many territories) or give a REPS layer."
            )
        inputs.weights = self.balance_weights(inputs)

        self.load_plan_layers(inputs, parameters, context, feedback)
        with self.unit_field_names(inputs):
            k = None if n_territories is None else int(n_territories)
            engine = (
                partial(coverage.design_coverage, coverage=cover)
                if cover.active
                else territories.design_territories
            )
            plan = self.run_grouped(engine, inputs, groups, n_territories=k)
            plan = getattr(plan, "plan", plan)
            region_dev = self.apply_regions(plan, inputs, groups, feedback)
        check_cancelled(feedback)
        results = self.write_plan_outputs(parameters, context, feedback, plan, inputs=inputs)
        results[self.REGION_MAX_DEVIATION_PCT] = region_dev
        recorded, id_field = self.manifest_plan(plan, inputs)
        return write_run_manifest(inputs.manifest, recorded, results, feedback, id_field=id_field)
