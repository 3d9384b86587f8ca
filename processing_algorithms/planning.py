"""What the planning wrappers (designterritories, rebalanceterritories) share.

:class:`PlanningAlgorithm` builds their common parameters (accounts, units and contiguity, reps,
balance, tolerance, locks, moves budget, network and the plan outputs), reads them into
:class:`PlanInputs`, loads the layers and the network, and writes a plan's outputs with styles
and numeric results. Each algorithm keeps its own parameters, checks and engine call in its module.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np
from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
    QgsWkbTypes,
)

from ..territory_planner_plugin.coverage import SKILL_RULES, Coverage
from ..territory_planner_plugin.errors import TerritoryPlannerError
from .base import (
    PROJECTED,
    SOLVERS,
    RunManifest,
    TerritoryPlannerAlgorithm,
    add_manifest_parameters,
    attach_style,
    crs_to_pyproj_string,
    enum_value,
    field_names,
    network_parameter,
    network_steps,
    optional_field,
    optional_number,
    parse_number_list,
    sink_parameter,
    source_to_gdf,
    start_run_manifest,
    write_sink,
)

_Number = QgsProcessingParameterNumber
_Field = QgsProcessingParameterField
_POLYGON = [QgsProcessing.TypeVectorPolygon]
# The engine's defaults of the units and contiguity arguments (contract of territories.py).
ENGINE_DEFAULTS = {
    "units": None, "unit_id_field": None, "study_area": None, "contiguous": None,
    "adjacency": "rook", "snap_m": 1.0, "unit_max_distance_m": 0.0,
}  # fmt: skip

# (engine value, label) pairs of the enums; the index is what qgis_process and models pass.
CONTIGUOUS_CHOICES = (
    (None, "Automatic: on with UNITS, off without"),
    (True, "On: every territory in one piece"),
    (False, "Off"),
)
SKILL_RULE_CHOICES = tuple(
    zip(
        SKILL_RULES,
        (
            "Hard: an account only goes to a rep who covers its segment",
            "Soft: preferred; SKILL_WEIGHT per account placed with a rep who does not",
        ),
    )
)
ADJACENCY_CHOICES = (
    ("rook", "Shared edge (rook)"),
    ("queen", "Any shared point, corners too (queen)"),
)

REGIONS_TIME_SHARE = 0.1  # of TIME_LIMIT kept for REGIONS (the plan gets the rest)


@dataclass
class PlanInputs:
    """The shared parameters of a planning run, then (load_plan_layers) its layers and network."""

    accounts_source: Any  # None: units alone
    reps_source: Any
    id_field: str | None
    balance_fields: list
    weights_text: str
    network_path: str
    options: dict  # engine keyword arguments; an algorithm adds its own
    units_source: Any = None
    study_area_source: Any = None
    unit_id_field: str | None = None
    weights: list | None = None
    accounts: Any = None
    reps: Any = None
    units: Any = None
    study_area: Any = None
    network: Any = None
    manifest: RunManifest | None = None
    progress: Callable | None = None
    is_cancelled: Callable | None = None

    def engine_arguments(self) -> dict:
        """Keyword arguments for the engine call (all but the accounts frame).

        Units and contiguity arguments at their engine defaults are left out, so a plan from
        accounts calls the engine exactly as before.
        """
        arguments = {
            "id_field": self.id_field,
            "reps": self.reps,
            "balance_fields": tuple(self.balance_fields),
            "balance_weights": self.weights,
            "network": self.network,
            "units": self.units,
            "unit_id_field": self.unit_id_field,
            "study_area": self.study_area,
            "progress": self.progress,
            "is_cancelled": self.is_cancelled,
            **self.options,
        }
        for key, default in ENGINE_DEFAULTS.items():
            value = arguments.get(key)
            same = value is None if default is None else isinstance(value, type(default))
            if same and (default is None or value == default):
                arguments.pop(key, None)
        return arguments


def advanced(param):
    """``param`` shown in the Advanced section of the dialog."""
    param.setFlags(param.flags() | param.FlagAdvanced)
    return param


def finite(value) -> float | None:
    """A float for a numeric output, None (NULL) for a missing or NaN value (e.g. no bound)."""
    return float(value) if value is not None and math.isfinite(float(value)) else None


class PlanningAlgorithm(TerritoryPlannerAlgorithm):
    """Parameters, reading, loading and outputs shared by the territory planning algorithms."""

    GROUP = "Territories"
    GROUP_ID = "territories"

    ACCOUNTS = "ACCOUNTS"
    ID_FIELD = "ID_FIELD"
    UNITS = "UNITS"
    UNIT_ID_FIELD = "UNIT_ID_FIELD"
    UNIT_BALANCE_FIELDS = "UNIT_BALANCE_FIELDS"
    UNIT_LOCK_FIELD = "UNIT_LOCK_FIELD"
    UNIT_CURRENT_FIELD = "UNIT_CURRENT_FIELD"
    CONTIGUOUS = "CONTIGUOUS"
    ADJACENCY = "ADJACENCY"
    SNAP_DISTANCE = "SNAP_DISTANCE"
    STUDY_AREA = "STUDY_AREA"
    UNIT_MAX_DISTANCE = "UNIT_MAX_DISTANCE"
    OUTPUT_UNITS = "OUTPUT_UNITS"
    SPLIT_TERRITORIES = "SPLIT_TERRITORIES"
    ACCOUNTS_OUTSIDE_UNITS = "ACCOUNTS_OUTSIDE_UNITS"
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
    NAMED_FIELD = "NAMED_FIELD"
    NAMED_TOP_PCT = "NAMED_TOP_PCT"
    NAMED_MEASURE = "NAMED_MEASURE"
    REP_NAMED_FIELD = "REP_NAMED_FIELD"
    SEGMENT_FIELD = "SEGMENT_FIELD"
    REP_SKILLS_FIELD = "REP_SKILLS_FIELD"
    SKILL_RULE = "SKILL_RULE"
    SKILL_WEIGHT = "SKILL_WEIGHT"
    GROUP_FIELD = "GROUP_FIELD"
    UNIT_GROUP_FIELD = "UNIT_GROUP_FIELD"
    REP_GROUP_FIELD = "REP_GROUP_FIELD"
    REGIONS = "REGIONS"
    REGION_MAX_DEVIATION_PCT = "REGION_MAX_DEVIATION_PCT"
    # (output key, plan attribute, label)
    BOUND_SCOPE = "BOUND_SCOPE"
    NUMERIC_OUTPUTS = (
        ("OBJECTIVE", "objective", "Objective value"),
        ("LOWER_BOUND", "lower_bound", "Lower bound of the objective"),
        ("GAP_PCT", "gap_pct", "Optimality gap (%)"),
        ("MAX_DEVIATION_PCT", "max_deviation_pct", "Largest balance deviation (%)"),
        ("MOVED", "moved", "Accounts moved from their current territory"),
    )

    # ---------------------------------------------------------------- parameters (dialog order)
    def add_account_parameters(self) -> None:
        """ACCOUNTS, ID_FIELD, UNITS, UNIT_ID_FIELD (accounts, units or both; checked on run)."""
        point = [QgsProcessing.TypeVectorPoint]
        add = self.addParameter
        add(
            QgsProcessingParameterFeatureSource(
                self.ACCOUNTS, self.tr("Accounts (points; optional with UNITS)"), point, None, True
            )
        )
        add(_Field(self.ID_FIELD, self.tr("Account id field"), None, self.ACCOUNTS, optional=True))
        add(
            QgsProcessingParameterFeatureSource(
                self.UNITS,
                self.tr("Units: areas to build territories from (postal areas, municipalities)"),
                _POLYGON,
                None,
                True,
            )
        )
        add(_Field(self.UNIT_ID_FIELD, self.tr("Unit id field"), None, self.UNITS, optional=True))

    def add_current_field_parameters(self, description: str) -> None:
        """CURRENT_FIELD (accounts) and UNIT_CURRENT_FIELD (units alone), both optional here."""
        add = self.addParameter
        add(_Field(self.CURRENT_FIELD, description, None, self.ACCOUNTS, optional=True))
        add(
            _Field(
                self.UNIT_CURRENT_FIELD,
                self.tr("Current territory field of the units (units without accounts)"),
                None,
                self.UNITS,
                optional=True,
            )
        )

    def add_contiguity_parameters(self) -> None:
        """CONTIGUOUS, ADJACENCY, SNAP_DISTANCE, STUDY_AREA, UNIT_MAX_DISTANCE."""
        add = self.addParameter
        add(
            QgsProcessingParameterEnum(
                self.CONTIGUOUS,
                self.tr("Every territory in one piece"),
                [label for _, label in CONTIGUOUS_CHOICES],
                False,
                0,
                True,  # optional with a default: older models and scripts stay valid
            )
        )
        add(
            QgsProcessingParameterEnum(
                self.ADJACENCY,
                self.tr("Units are neighbours when they share"),
                [label for _, label in ADJACENCY_CHOICES],
                False,
                0,
                True,  # optional with a default: older models and scripts stay valid
            )
        )
        add(
            advanced(
                _Number(
                    self.SNAP_DISTANCE,
                    self.tr(
                        "Gap between units still counted as shared boundary, and closed in territory "
                        "polygons (metres)"
                    ),
                    _Number.Double,
                    1.0,
                    True,
                    0.0,
                )
            )
        )
        add(
            QgsProcessingParameterFeatureSource(
                self.STUDY_AREA,
                self.tr("Study area clipping the territory polygons (accounts without units)"),
                _POLYGON,
                None,
                True,
            )
        )
        add(
            advanced(
                _Number(
                    self.UNIT_MAX_DISTANCE,
                    self.tr("Accounts outside every unit: nearest unit within (metres)"),
                    _Number.Double,
                    0.0,
                    True,
                    0.0,
                )
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
            QgsProcessingParameterField(
                self.UNIT_BALANCE_FIELDS,
                self.tr("Fields of the units to balance (units without accounts, e.g. population)"),
                None,
                self.UNITS,
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
        self.addParameter(
            QgsProcessingParameterField(
                self.UNIT_LOCK_FIELD,
                self.tr("Lock field of the units (units without accounts)"),
                None,
                self.UNITS,
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

    def add_coverage_parameters(self) -> None:
        """Named-account tier (NAMED_FIELD / NAMED_TOP_PCT / NAMED_MEASURE, REP_NAMED_FIELD) and
        expertise (SEGMENT_FIELD, REP_SKILLS_FIELD, SKILL_RULE, SKILL_WEIGHT); advanced."""
        add = self.addParameter
        field = QgsProcessingParameterField
        add(advanced(field(self.NAMED_FIELD, self.tr("Named-account flag of the accounts (1 = named)"),
                           None, self.ACCOUNTS, optional=True)))  # fmt: skip
        add(
            advanced(
                _Number(
                    self.NAMED_TOP_PCT,
                    self.tr("Name the largest accounts making up this % of NAMED_MEASURE (0-100)"),
                    _Number.Double,
                    None,
                    True,
                )
            )
        )
        add(advanced(field(self.NAMED_MEASURE, self.tr("Measure for NAMED_TOP_PCT (default: the first balance field)"),
                           None, self.ACCOUNTS, field.Numeric, optional=True)))  # fmt: skip
        add(advanced(field(self.REP_NAMED_FIELD, self.tr("Named-account rep flag of the reps (1 = named)"),
                           None, self.REPS, optional=True)))  # fmt: skip
        add(advanced(field(self.SEGMENT_FIELD, self.tr("Segment of the accounts (industry, size, tier)"),
                           None, self.ACCOUNTS, optional=True)))  # fmt: skip
        add(advanced(field(self.REP_SKILLS_FIELD, self.tr("Segments each rep covers (e.g. healthcare,finance)"),
                           None, self.REPS, optional=True)))  # fmt: skip
        add(
            advanced(
                QgsProcessingParameterEnum(
                    self.SKILL_RULE,
                    self.tr("Expertise rule"),
                    [label for _, label in SKILL_RULE_CHOICES],
                    False,
                    0,
                    True,  # optional (the default applies): models made before it stay valid
                )
            )
        )
        add(
            advanced(
                _Number(
                    self.SKILL_WEIGHT,
                    self.tr("Soft rule: penalty per account with a rep outside its segment"),
                    _Number.Double,
                    10.0,
                    True,  # optional (the default applies)
                    0.0,
                )
            )
        )

    def read_coverage(self, parameters, context) -> Coverage:
        """The coverage options (Coverage().active is false when none is set)."""
        return Coverage(
            named_field=optional_field(self, parameters, self.NAMED_FIELD, context),
            named_top_pct=optional_number(self, parameters, self.NAMED_TOP_PCT, context),
            named_measure=optional_field(self, parameters, self.NAMED_MEASURE, context),
            rep_named_field=optional_field(self, parameters, self.REP_NAMED_FIELD, context),
            segment_field=optional_field(self, parameters, self.SEGMENT_FIELD, context),
            rep_skills_field=optional_field(self, parameters, self.REP_SKILLS_FIELD, context),
            skill_rule=enum_value(self, parameters, self.SKILL_RULE, context, SKILL_RULE_CHOICES),
            skill_weight=self.parameterAsDouble(parameters, self.SKILL_WEIGHT, context),
        )

    def check_coverage(self, coverage: Coverage) -> None:
        """Refuse coverage parameters that cannot work together (before the layers are read)."""
        if coverage.named_field and coverage.named_top_pct is not None:
            raise QgsProcessingException(
                "NAMED_FIELD and NAMED_TOP_PCT both choose the named accounts; give one of them."
            )
        pct = coverage.named_top_pct
        if pct is not None and not (0 <= pct <= 100):
            raise QgsProcessingException(
                f"NAMED_TOP_PCT: {pct:g} is outside 0-100; give the share of NAMED_MEASURE (in %) "
                "the named accounts make up, e.g. 20."
            )
        if coverage.named and not coverage.rep_named_field:
            raise QgsProcessingException(
                "REP_NAMED_FIELD: a named tier needs the reps' field that flags the named-account "
                "reps (1 = named); choose it in REPS."
            )
        if coverage.rep_named_field and not coverage.named:
            raise QgsProcessingException(
                "REP_NAMED_FIELD is set but no account is named: set NAMED_FIELD or NAMED_TOP_PCT "
                "(e.g. 20), or leave REP_NAMED_FIELD empty."
            )
        if bool(coverage.segment_field) != bool(coverage.rep_skills_field):
            raise QgsProcessingException(
                "SEGMENT_FIELD and REP_SKILLS_FIELD go together: the accounts' segment and the "
                "segments each rep covers; set both or neither."
            )

    def add_group_parameters(self) -> None:
        """GROUP_FIELD, UNIT_GROUP_FIELD, REP_GROUP_FIELD, REGIONS and the
        REGION_MAX_DEVIATION_PCT output."""
        add = self.addParameter
        add(
            _Field(
                self.GROUP_FIELD,
                self.tr("Group field: plan each group separately (state, region, segment)"),
                None,
                self.ACCOUNTS,
                optional=True,
            )
        )
        add(
            _Field(
                self.UNIT_GROUP_FIELD,
                self.tr("Group field of the units: plan each group separately (e.g. the state)"),
                None,
                self.UNITS,
                optional=True,
            )
        )
        add(
            _Field(
                self.REP_GROUP_FIELD,
                self.tr("Group field of the reps (empty = same name as GROUP_FIELD)"),
                None,
                self.REPS,
                optional=True,
            )
        )
        add(
            _Number(
                self.REGIONS,
                self.tr("Group the territories into this many regions (0 = off)"),
                _Number.Integer,
                0,
                True,
                0,
            )
        )
        self.addOutput(
            QgsProcessingOutputNumber(
                self.REGION_MAX_DEVIATION_PCT, self.tr("Largest balance deviation of a region (%)")
            )
        )

    def read_group_options(self, parameters, context, inputs: PlanInputs) -> dict:
        """GROUP_FIELD (accounts) or UNIT_GROUP_FIELD (units), REP_GROUP_FIELD and REGIONS,
        checked against the other inputs."""
        group_field = optional_field(self, parameters, self.GROUP_FIELD, context)
        unit_group_field = optional_field(self, parameters, self.UNIT_GROUP_FIELD, context)
        rep_group_field = optional_field(self, parameters, self.REP_GROUP_FIELD, context)
        regions_n = self.parameterAsInt(parameters, self.REGIONS, context) if not _unset(
            parameters.get(self.REGIONS)) else 0  # fmt: skip
        if unit_group_field and inputs.units_source is None:
            raise QgsProcessingException(
                "UNIT_GROUP_FIELD is a field of UNITS: give UNITS, or use GROUP_FIELD for "
                "ACCOUNTS without units."
            )
        if group_field and inputs.units_source is not None:
            raise QgsProcessingException(
                f"GROUP_FIELD '{group_field}' is a field of ACCOUNTS; with UNITS every area is "
                "planned whole, so the groups are the areas': choose UNIT_GROUP_FIELD (e.g. each "
                "county's state) and leave GROUP_FIELD empty."
            )
        if group_field and inputs.accounts_source is None:
            raise QgsProcessingException(
                "GROUP_FIELD is a field of ACCOUNTS: give ACCOUNTS, or leave GROUP_FIELD empty."
            )
        group_field = group_field or unit_group_field
        if rep_group_field and inputs.reps_source is None:
            raise QgsProcessingException(
                "REP_GROUP_FIELD is a field of REPS: give REPS, or leave REP_GROUP_FIELD empty."
            )
        if rep_group_field and not group_field:
            raise QgsProcessingException(
                "REP_GROUP_FIELD is used with GROUP_FIELD or UNIT_GROUP_FIELD: set one (the "
                "accounts' or the units' group), or leave REP_GROUP_FIELD empty."
            )
        if regions_n < 0:
            raise QgsProcessingException("REGIONS: give 0 (off) or a number of regions, e.g. 6.")
        return {"group_field": group_field, "rep_group_field": rep_group_field,
                "regions": regions_n}  # fmt: skip

    def run_grouped(self, engine: Callable, inputs: PlanInputs, groups: dict, **extra):
        """``engine`` on the whole input, or once per group (GROUP_FIELD) merged. With REGIONS
        the plan gets ``1 - REGIONS_TIME_SHARE`` of TIME_LIMIT and the regions what is left."""
        from ..territory_planner_plugin import regions

        arguments = {**inputs.engine_arguments(), **extra}
        groups["began"] = time.perf_counter()
        if groups["regions"] and "time_limit_s" in arguments:
            whole = arguments["time_limit_s"]
            arguments["time_limit_s"] = (1.0 - REGIONS_TIME_SHARE) * whole
            regions.logger.info("REGIONS: the territories get %.0f s of TIME_LIMIT %.0f s, the "
                                "regions what is left (at least %.0f s).",
                                arguments["time_limit_s"], whole, REGIONS_TIME_SHARE * whole)  # fmt: skip
        if not groups["group_field"]:
            return engine(inputs.accounts, **arguments)

        return regions.plan_by_group(
            engine, inputs.accounts, group_field=groups["group_field"],
            rep_group_field=groups["rep_group_field"], **arguments,
        )  # fmt: skip

    def apply_regions(self, plan, inputs: PlanInputs, groups: dict, feedback) -> float | None:
        """REGIONS: region_id in the plan's outputs; returns the regions' largest deviation."""
        if not groups["regions"]:
            return None
        from ..territory_planner_plugin import regions

        options = inputs.options
        limit = options["time_limit_s"]  # what the plan left of it, at least the regions' share
        left = limit - (time.perf_counter() - groups.get("began", time.perf_counter()))
        result = regions.add_regions(
            plan, n_regions=groups["regions"], tolerance_pct=options["tolerance_pct"],
            contiguous=getattr(plan, "units", None) is not None, seed=options.get("seed", 0),
            time_limit_s=max(left, REGIONS_TIME_SHARE * limit), solver=options["solver"],
        )  # fmt: skip
        for row in result.summary.itertuples(index=False):
            feedback.pushInfo("Region " + ", ".join(f"{k} {v}" for k, v in row._asdict().items()))
        return finite(result.max_deviation_pct)

    def add_network_parameter(self) -> None:
        """NETWORK (optional: straight lines without it)."""
        self.addParameter(
            network_parameter(
                optional=True, description=self.tr("Road network (empty = straight lines)")
            )
        )

    def add_plan_outputs(self, *extra_sinks) -> None:
        """The plan sinks, ``extra_sinks``, MANIFEST/OUTPUT_MANIFEST and the numeric outputs."""
        add = self.addParameter
        add(
            sink_parameter(
                self.OUTPUT_ACCOUNTS,
                self.tr("Accounts with territory"),
                QgsProcessing.TypeVectorPoint,
                optional=True,  # not written for units without accounts
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
        add(
            sink_parameter(
                self.OUTPUT_UNITS,
                self.tr("Units with territory"),
                QgsProcessing.TypeVectorPolygon,
                optional=True,
            )
        )
        for sink in extra_sinks:
            add(sink)
        add_manifest_parameters(self)
        for key, _, label in self.NUMERIC_OUTPUTS:
            self.addOutput(QgsProcessingOutputNumber(key, self.tr(label)))
        self.addOutput(
            QgsProcessingOutputString(
                self.BOUND_SCOPE,
                self.tr(
                    "What LOWER_BOUND bounds: 'problem', or 'these centres' (the centres chosen)"
                ),
            )
        )
        self.addOutput(
            QgsProcessingOutputNumber(
                self.SPLIT_TERRITORIES, self.tr("Territories in more than one piece")
            )
        )
        self.addOutput(
            QgsProcessingOutputNumber(
                self.ACCOUNTS_OUTSIDE_UNITS,
                self.tr("Accounts outside every unit (placed in the nearest unit)"),
            )
        )

    # ---------------------------------------------------------------- running
    def read_plan_inputs(self, parameters, context) -> PlanInputs:
        """The shared parameters, checked (unreadable or missing layers and fields raise here).

        ACCOUNTS, UNITS or both; without ACCOUNTS the balance, lock and current fields are the
        UNIT_* fields of the units.
        """
        accounts_source = self._optional_source(parameters, self.ACCOUNTS, context)
        units_source = self._optional_source(parameters, self.UNITS, context)
        if accounts_source is None and units_source is None:
            raise QgsProcessingException(
                "Give ACCOUNTS (points), UNITS (areas such as postal codes or municipalities) or "
                "both: there is nothing to divide into territories."
            )
        id_field = optional_field(self, parameters, self.ID_FIELD, context)
        if accounts_source is not None and not id_field:
            raise QgsProcessingException("ID_FIELD: choose the field that identifies each account.")
        unit_id_field = optional_field(self, parameters, self.UNIT_ID_FIELD, context)
        if units_source is not None:
            if not unit_id_field:
                raise QgsProcessingException(
                    "UNIT_ID_FIELD: choose the field that identifies each unit (e.g. the postal "
                    "code or municipality code)."
                )
            _check_polygons(units_source, self.UNITS, "postal areas, municipalities, counties")
        study_area_source = self._optional_source(parameters, self.STUDY_AREA, context)
        if study_area_source is not None:
            _check_polygons(study_area_source, self.STUDY_AREA, "the market or land area")
        fields = {
            key: self._level_fields(parameters, context, key, unit_key, accounts_source)
            for key, unit_key in (
                (self.BALANCE_FIELDS, self.UNIT_BALANCE_FIELDS),
                (self.LOCK_FIELD, self.UNIT_LOCK_FIELD),
            )
        }
        return PlanInputs(
            accounts_source=accounts_source,
            reps_source=self.parameterAsSource(parameters, self.REPS, context),
            id_field=id_field,
            balance_fields=fields[self.BALANCE_FIELDS],
            weights_text=self.parameterAsString(parameters, self.BALANCE_WEIGHTS, context),
            network_path=self.parameterAsFile(parameters, self.NETWORK, context),
            units_source=units_source,
            study_area_source=study_area_source,
            unit_id_field=unit_id_field if units_source is not None else None,
            options={
                "rep_id_field": optional_field(self, parameters, self.REP_ID_FIELD, context),
                "rep_capacity_field": optional_field(
                    self, parameters, self.REP_CAPACITY_FIELD, context
                ),
                "rep_max_minutes": optional_number(self, parameters, self.REP_MAX_MINUTES, context),
                "tolerance_pct": self.parameterAsDouble(parameters, self.TOLERANCE, context),
                "lock_field": (fields[self.LOCK_FIELD] or [None])[0],
                "max_moves_pct": optional_number(self, parameters, self.MAX_MOVES, context),
                "time_limit_s": self.parameterAsDouble(parameters, self.TIME_LIMIT, context),
                "solver": enum_value(self, parameters, self.SOLVER, context, SOLVERS),
                "contiguous": enum_value(
                    self, parameters, self.CONTIGUOUS, context, CONTIGUOUS_CHOICES
                ),
                "adjacency": enum_value(
                    self, parameters, self.ADJACENCY, context, ADJACENCY_CHOICES
                ),
                "snap_m": self.parameterAsDouble(parameters, self.SNAP_DISTANCE, context),
                "unit_max_distance_m": self.parameterAsDouble(
                    parameters, self.UNIT_MAX_DISTANCE, context
                ),
            },
        )

    def current_field(self, parameters, context, inputs: PlanInputs) -> str | None:
        """CURRENT_FIELD (of the accounts) or, for units without accounts, UNIT_CURRENT_FIELD."""
        fields = self._level_fields(
            parameters, context, self.CURRENT_FIELD, self.UNIT_CURRENT_FIELD,
            inputs.accounts_source,
        )  # fmt: skip
        return fields[0] if fields else None

    def _optional_source(self, parameters, key: str, context):
        """The source of an optional layer parameter; None when unset, an error when unreadable."""
        source = self.parameterAsSource(parameters, key, context)
        if source is None and parameters.get(key) not in (None, ""):
            raise QgsProcessingException(self.invalidSourceError(parameters, key))
        return source

    def _level_fields(self, parameters, context, key: str, unit_key: str, accounts) -> list:
        """The fields of ``key`` (accounts) or ``unit_key`` (units alone); the other must be empty.

        With ACCOUNTS every measure, lock and current territory is read from the accounts (and
        summed or voted per unit); without them from the units.
        """
        names = field_names(self, parameters, key, context)
        unit_names = field_names(self, parameters, unit_key, context)
        if accounts is not None and unit_names:
            raise QgsProcessingException(
                f"{unit_key} is for UNITS without ACCOUNTS. With ACCOUNTS the accounts' fields "
                f"count ({key}: each account counts in the unit that contains it); move "
                f"{', '.join(unit_names)} to {key} as account fields, or leave {unit_key} empty."
            )
        if accounts is None and names:
            raise QgsProcessingException(
                f"{key} names fields of ACCOUNTS, but no ACCOUNTS are given. For UNITS alone "
                f"choose the units' fields in {unit_key} instead."
            )
        return names if accounts is not None else unit_names

    def check_reps(self, parameters, inputs: PlanInputs) -> None:
        """A REPS layer that cannot be read, or REPS without REP_ID_FIELD, is an error."""
        if parameters.get(self.REPS) not in (None, "") and inputs.reps_source is None:
            raise QgsProcessingException(self.invalidSourceError(parameters, self.REPS))
        if inputs.reps_source is not None and not inputs.options["rep_id_field"]:
            raise QgsProcessingException("REP_ID_FIELD: choose the field that identifies each rep.")

    def balance_weights(self, inputs: PlanInputs) -> list | None:
        """BALANCE_WEIGHTS as numbers (None when empty), one per balance field."""
        weights = parse_number_list(
            inputs.weights_text, self.BALANCE_WEIGHTS, positive=False, example="2,1"
        )
        accounts = inputs.accounts_source is not None
        key = self.BALANCE_FIELDS if accounts else self.UNIT_BALANCE_FIELDS
        if weights and len(weights) != len(inputs.balance_fields):
            raise QgsProcessingException(
                f"BALANCE_WEIGHTS has {len(weights)} value(s) but {key} has "
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

        Every layer is projected to the network's CRS; without a network to the units' CRS when
        it is metric, else a local metric CRS (UTM) around the accounts or units. Units or a study area
        without a CRS are refused (their position would be a guess). ``check_accounts(accounts)``
        runs before the other layers are read.
        """
        steps, inputs.progress, inputs.is_cancelled, net = network_steps(
            feedback, inputs.network_path
        )
        target = net.crs if net is not None else PROJECTED  # metres for the engine
        if inputs.units_source is not None:
            _check_crs(inputs.units_source, self.UNITS)
            units_crs = inputs.units_source.sourceCrs()
            if net is None and not units_crs.isGeographic():
                target = crs_to_pyproj_string(units_crs)  # keep the areas' own metric CRS
        accounts = units = study_area = None
        if inputs.accounts_source is not None:
            accounts = source_to_gdf(
                inputs.accounts_source, feedback=steps, name="ACCOUNTS", target_crs=target,
                points=True,
            )  # fmt: skip
            if check_accounts is not None:
                check_accounts(accounts)
            target = accounts.crs
        if inputs.units_source is not None:
            units = source_to_gdf(
                inputs.units_source, feedback=steps, name="UNITS", target_crs=target
            )
            target = units.crs
        if inputs.study_area_source is not None:
            if units is not None:
                feedback.pushInfo(
                    "STUDY_AREA is not used with UNITS: the territories are the dissolved units."
                )
            else:
                _check_crs(inputs.study_area_source, self.STUDY_AREA)
                study_area = source_to_gdf(
                    inputs.study_area_source, feedback=steps, name="STUDY_AREA", target_crs=target
                )
        reps = None
        if inputs.reps_source is not None:
            reps = source_to_gdf(
                inputs.reps_source, feedback=steps, name="REPS", target_crs=target, points=True
            )
        steps.setCurrentStep(2)
        inputs.network, inputs.accounts, inputs.reps = net, accounts, reps
        inputs.units, inputs.study_area = units, study_area
        frames = {self.ACCOUNTS: accounts, self.REPS: reps}
        if units is not None:
            frames[self.UNITS] = units
        if study_area is not None:
            frames[self.STUDY_AREA] = study_area
        inputs.manifest = start_run_manifest(
            self, parameters, context, feedback,
            frames=frames,
            files={self.NETWORK: inputs.network_path},
        )  # fmt: skip

    def write_plan_outputs(
        self, parameters, context, feedback, plan, tables=None, inputs: PlanInputs | None = None
    ) -> dict:
        """Write the plan sinks (styled), then ``tables`` ({key: frame}), then the numbers.

        OUTPUT_ACCOUNTS is left out for units without accounts, OUTPUT_UNITS without units.
        """
        results = {}
        units = getattr(plan, "units", None)
        settings = {**_plan_settings(inputs), "plan_id": _plan_id(plan)}
        for key, frame, kind in (
            (self.OUTPUT_ACCOUNTS, plan.accounts, "accounts"),
            (self.OUTPUT_TERRITORIES, plan.territories, "territories"),
            (self.OUTPUT_CENTRES, plan.centres, "centres"),
            (self.OUTPUT_SUMMARY, plan.summary, "summary"),
            (self.OUTPUT_UNITS, units, "units"),
        ):
            if frame is None:
                results[key] = None
                if not _unset(parameters.get(key)):
                    layer = "ACCOUNTS" if key == self.OUTPUT_ACCOUNTS else "UNITS"
                    feedback.pushInfo(f"{key} is not written: the run has no {layer}.")
                continue
            is_table = key == self.OUTPUT_SUMMARY
            results[key] = write_sink(
                self, parameters, key, context, frame, feedback=feedback, geometry=not is_table
            )
            attach_style(context, results[key], kind, properties=settings)
        for key, frame in (tables or {}).items():
            results[key] = write_sink(
                self, parameters, key, context, frame, feedback=feedback, geometry=False
            )
        for key, attribute, label in self.NUMERIC_OUTPUTS:
            results[key] = finite(getattr(plan, attribute, None))  # NaN (e.g. no bound) -> NULL
            feedback.pushInfo(f"{label}: {results[key]}")
        results[self.BOUND_SCOPE] = str(getattr(plan, "bound_scope", "problem"))
        if results[self.BOUND_SCOPE] != "problem":
            feedback.pushInfo("The lower bound and gap hold for these centres (chosen by the "
                              "algorithm); other centres may do better.")  # fmt: skip
        results.update(_piece_results(plan, feedback, inputs))
        return results

    @contextmanager
    def unit_field_names(self, inputs: PlanInputs) -> Iterator[None]:
        """For units alone, engine messages about BALANCE_FIELDS etc. name the UNIT_* parameters.

        The engine calls a measure BALANCE_FIELDS whichever layer it is read from; in the dialog
        the units' fields are UNIT_BALANCE_FIELDS, UNIT_LOCK_FIELD and UNIT_CURRENT_FIELD.
        """
        try:
            yield
        except TerritoryPlannerError as err:
            text = str(err)
            if inputs.accounts_source is not None or inputs.units_source is None:
                raise
            for key in (self.BALANCE_FIELDS, self.LOCK_FIELD, self.CURRENT_FIELD):
                text = re.sub(rf"(?<![A-Z_]){key}\b", f"UNIT_{key}", text)
            if text == str(err):
                raise
            raise QgsProcessingException(text) from None

    def manifest_plan(self, plan, inputs: PlanInputs) -> tuple[Any, str]:
        """``(plan, id field)`` for write_run_manifest: the units stand in for absent accounts."""
        if plan.accounts is not None or getattr(plan, "units", None) is None:
            return plan, inputs.id_field
        view = SimpleNamespace(**{
            name: getattr(plan, name, None)
            for name in ("objective", "lower_bound", "gap_pct", "max_deviation_pct", "moved",
                         "kpis", "parameters")
        })  # fmt: skip
        view.accounts = plan.units
        return view, inputs.unit_id_field


def _plan_settings(inputs: PlanInputs | None) -> dict:
    """The settings stored with a plan's styled outputs, for the Territory editor to pre-fill."""
    if inputs is None:
        return {}
    opts = inputs.options or {}
    return {
        "tolerance_pct": opts.get("tolerance_pct"),
        "balance_fields": ",".join(inputs.balance_fields or []),
        "lock_field": "locked",
        "network": inputs.network_path or None,
        "rep_max_minutes": opts.get("rep_max_minutes"),
    }


def _plan_id(plan) -> str:
    """A short fingerprint of the plan (its summary: territories, counts and totals): stored
    with each styled output, so the Territory editor pairs a plan's layers (its centres'
    capacities, its territory polygons) and not those of another plan with the same ids."""
    text = plan.summary.to_csv(index=False, float_format="%.6g") if plan.summary is not None else ""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def _unset(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _check_polygons(source, key: str, examples: str) -> None:
    """A layer of ``key`` must hold polygons (the dialog filters, qgis_process does not); an
    empty layer is named as such (its geometry type may be unknown)."""
    kind = QgsWkbTypes.geometryType(source.wkbType())
    if kind != QgsWkbTypes.PolygonGeometry and source.featureCount() == 0:
        raise QgsProcessingException(
            f"{key}: the layer '{source.sourceName()}' is empty; add the areas ({examples}) or "
            "choose another layer."
        )
    if kind != QgsWkbTypes.PolygonGeometry:
        name = QgsWkbTypes.displayString(source.wkbType()) or "no geometry"
        raise QgsProcessingException(
            f"{key} must be a polygon layer ({examples}); '{source.sourceName()}' has {name} "
            "geometries. Choose a polygon layer"
            + (", or give points as ACCOUNTS." if key == "UNITS" else ".")
        )


def _check_crs(source, key: str) -> None:
    """A layer without a valid CRS is refused: guessing where areas lie would misplace them."""
    if not source.sourceCrs().isValid():
        raise QgsProcessingException(
            f"{key} '{source.sourceName()}' has no coordinate reference system. Set it (Layer "
            "Properties > Source > Assign CRS, or the 'Assign projection' algorithm) and run "
            "again."
        )


def _accounts_outside(inputs: PlanInputs | None) -> int | None:
    """Accounts that lie in no unit (the engine placed them in the nearest), None without both."""
    if inputs is None or inputs.accounts is None or inputs.units is None:
        return None
    import shapely

    units = shapely.make_valid(np.asarray(inputs.units.geometry.values))
    points = np.asarray(inputs.accounts.geometry.values)
    inside = shapely.STRtree(units).query(points, predicate="intersects")[0]
    return int(len(points) - len(np.unique(inside)))


def _piece_results(plan, feedback, inputs: PlanInputs | None = None) -> dict:
    """SPLIT_TERRITORIES and ACCOUNTS_OUTSIDE_UNITS, logged with the split territories' pieces."""
    kpis = getattr(plan, "kpis", None) or {}
    summary = plan.summary
    split = kpis.get("split_territories")
    if "pieces" in getattr(summary, "columns", ()):
        pieces = summary.set_index("territory_id")["pieces"].dropna()
        many = pieces[pieces > 1]
        if split is None:
            split = len(many)
        if len(many):
            feedback.pushWarning(
                "Territories in more than one piece: "
                + ", ".join(f"{tid} ({int(n)} pieces)" for tid, n in many.items())
                + ". Set CONTIGUOUS to 'On' to keep every territory in one piece."
            )
        elif len(pieces):
            feedback.pushInfo(f"Every territory is one piece ({len(pieces)} territories).")
    outside = kpis.get("accounts_outside_units")
    if outside is None:
        outside = _accounts_outside(inputs)
    results = {"SPLIT_TERRITORIES": finite(split), "ACCOUNTS_OUTSIDE_UNITS": finite(outside)}
    for key, value in results.items():
        if value is not None:  # (no accounts outside units to count in a plan without units)
            feedback.pushInfo(f"{key}: {value}")
    return results
