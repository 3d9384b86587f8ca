"""Processing wrapper: how many territories (reps) meet a target per territory; trade-off over K."""

from __future__ import annotations

import pulp  # noqa: F401  (import at module level: see ENV-NOTES #8, empty GeoPackage trap)
from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
)

from ..territory_planner_plugin import sizing
from .base import (
    PROJECTED,
    TerritoryPlannerAlgorithm,
    check_cancelled,
    engine_run,
    field_names,
    network_parameter,
    network_steps,
    optional_field,
    optional_number,
    seed_parameter,
    sink_parameter,
    source_or_error,
    source_to_gdf,
    time_limit_parameter,
    write_sink,
)

_Number = QgsProcessingParameterNumber
_Field = QgsProcessingParameterField


class SizeTerritoriesAlgorithm(TerritoryPlannerAlgorithm):
    """The smallest number of territories meeting a target, with the trade-off table over K."""

    ALGORITHM_ID = "sizeterritories"
    DISPLAY_NAME = "Size territories (how many reps)"
    GROUP = "Territories"
    GROUP_ID = "territories"

    ACCOUNTS = "ACCOUNTS"
    ID_FIELD = "ID_FIELD"
    BALANCE_FIELDS = "BALANCE_FIELDS"
    TARGET_FIELD = "TARGET_FIELD"
    TARGET_PER_TERRITORY = "TARGET_PER_TERRITORY"
    TARGET_MIN = "TARGET_MIN"
    TARGET_MAX = "TARGET_MAX"
    K_MIN = "K_MIN"
    K_MAX = "K_MAX"
    TOLERANCE = "TOLERANCE"
    CURRENT_FIELD = "CURRENT_FIELD"
    NETWORK = "NETWORK"
    SEED = "SEED"
    TIME_LIMIT = "TIME_LIMIT"
    OUTPUT_TABLE = "OUTPUT_TABLE"
    OUTPUT_HTML = "OUTPUT_HTML"
    RECOMMENDED_K = "RECOMMENDED_K"

    def initAlgorithm(self, config=None) -> None:
        add = self.addParameter
        numeric = _Field.Numeric
        add(
            QgsProcessingParameterFeatureSource(
                self.ACCOUNTS, self.tr("Accounts"), [QgsProcessing.TypeVectorPoint]
            )
        )
        add(_Field(self.ID_FIELD, self.tr("Account id field"), None, self.ACCOUNTS))
        add(
            _Field(
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
            _Field(
                self.TARGET_FIELD,
                self.tr("Target field (empty = first balance field, or account count)"),
                None,
                self.ACCOUNTS,
                numeric,
                optional=True,
            )
        )
        for key, text in (
            (self.TARGET_PER_TERRITORY, "Target per territory (e.g. 1200 visits a year)"),
            (self.TARGET_MIN, "Or a range: least per territory (e.g. 80 active prospects)"),
            (self.TARGET_MAX, "... and most per territory (e.g. 120)"),
        ):
            add(_Number(key, self.tr(text), _Number.Double, None, True, 0.0))
        add(_Number(self.K_MIN, self.tr("Fewest territories to try"), _Number.Integer, 1, False, 1))
        add(_Number(self.K_MAX, self.tr("Most territories to try"), _Number.Integer, 20, False, 1))
        add(
            _Number(
                self.TOLERANCE, self.tr("Allowed imbalance (%)"), _Number.Double, 5.0, False, 0.0,
                100.0,
            )
        )  # fmt: skip
        add(
            _Field(
                self.CURRENT_FIELD,
                self.tr("Current territory field (disruption against today's plan)"),
                None,
                self.ACCOUNTS,
                optional=True,
            )
        )
        add(
            network_parameter(
                optional=True, description=self.tr("Road network (empty = straight lines)")
            )
        )
        add(seed_parameter())
        add(time_limit_parameter(60.0))
        add(sink_parameter(self.OUTPUT_TABLE, self.tr("Trade-off table"), QgsProcessing.TypeVector))
        add(
            QgsProcessingParameterFileDestination(
                self.OUTPUT_HTML, self.tr("Trade-off chart"), "HTML files (*.html)", optional=True
            )
        )
        self.addOutput(
            QgsProcessingOutputNumber(
                self.RECOMMENDED_K, self.tr("Recommended number of territories")
            )
        )

    @engine_run
    def processAlgorithm(self, parameters, context, feedback):
        source = source_or_error(self, parameters, self.ACCOUNTS, context)
        id_field = optional_field(self, parameters, self.ID_FIELD, context)
        if not id_field:
            raise QgsProcessingException("ID_FIELD: choose the field that identifies each account.")
        k_min = self.parameterAsInt(parameters, self.K_MIN, context)
        k_max = self.parameterAsInt(parameters, self.K_MAX, context)
        if k_max < k_min:
            raise QgsProcessingException(
                f"K_MAX ({k_max}) is below K_MIN ({k_min}): give K_MIN <= K_MAX, e.g. 3 and 12."
            )
        html_path = self.parameterAsFileOutput(parameters, self.OUTPUT_HTML, context)
        steps, progress, is_cancelled, net = network_steps(
            feedback, self.parameterAsFile(parameters, self.NETWORK, context)
        )
        target_crs = net.crs if net is not None else PROJECTED
        accounts = source_to_gdf(
            source, feedback=steps, name=self.ACCOUNTS, target_crs=target_crs, points=True
        )
        steps.setCurrentStep(2)
        result = sizing.size_territories(
            accounts,
            id_field=id_field,
            balance_fields=tuple(field_names(self, parameters, self.BALANCE_FIELDS, context)),
            target_field=optional_field(self, parameters, self.TARGET_FIELD, context),
            target_per_territory=optional_number(
                self, parameters, self.TARGET_PER_TERRITORY, context
            ),
            target_min=optional_number(self, parameters, self.TARGET_MIN, context),
            target_max=optional_number(self, parameters, self.TARGET_MAX, context),
            k_min=k_min,
            k_max=k_max,
            tolerance_pct=self.parameterAsDouble(parameters, self.TOLERANCE, context),
            current_field=optional_field(self, parameters, self.CURRENT_FIELD, context),
            network=net,
            seed=self.parameterAsInt(parameters, self.SEED, context),
            time_limit_s=self.parameterAsDouble(parameters, self.TIME_LIMIT, context),
            progress=progress,
            is_cancelled=is_cancelled,
        )
        check_cancelled(feedback)
        results = {
            self.OUTPUT_TABLE: write_sink(
                self,
                parameters,
                self.OUTPUT_TABLE,
                context,
                result.table,
                feedback=feedback,
                geometry=False,
            ),
            self.RECOMMENDED_K: result.recommended_k,
        }
        if html_path:
            with open(html_path, "w", encoding="utf-8") as fh:
                fh.write(sizing.sizing_html(result))
            results[self.OUTPUT_HTML] = html_path
        lo, hi = result.band
        for row in result.table.itertuples(index=False):
            feedback.pushInfo(
                f"K = {row.k}: {result.target_name} {row.target_min:g}-{row.target_max:g} per "
                f"territory, largest deviation {row.max_deviation_pct:g}%"
                + (" - meets the target" if row.meets_target else "")
            )
        feedback.pushInfo(
            f"RECOMMENDED_K: {result.recommended_k} (the fewest territories with every "
            f"{result.target_name} total within {lo:g}-{hi:g})."
        )
        return results
