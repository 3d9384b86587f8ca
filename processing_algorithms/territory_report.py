"""territory_planner:territoryreport - self-contained HTML report + summary CSV.

Reads the plan's outputs (accounts, territories, centres or reps, summary) into frames; the engine
(territory_planner_plugin.report) judges the plan by its own capacity-weighted targets and draws
the map with matplotlib.
"""

from __future__ import annotations

import pandas as pd
from qgis.core import (
    QgsFeatureRequest,
    QgsProcessing,
    QgsProcessingOutputFile,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
)

from ..territory_planner_plugin import kpis, report
from .base import (
    TerritoryPlannerAlgorithm,
    _column,
    _python_value,
    engine_run,
    field_names,
    optional_field,
    optional_number,
    source_or_error,
    source_to_gdf,
)


class TerritoryReportAlgorithm(TerritoryPlannerAlgorithm):
    """KPIs against targets, balance charts, disruption, a map and an optional second plan."""

    ALGORITHM_ID = "territoryreport"
    DISPLAY_NAME = "Territory report"
    GROUP = "Results"
    GROUP_ID = "results"

    ACCOUNTS = "ACCOUNTS"
    TERRITORY_FIELD = "TERRITORY_FIELD"
    BALANCE_FIELDS = "BALANCE_FIELDS"
    CURRENT_FIELD = "CURRENT_FIELD"
    TERRITORIES = "TERRITORIES"
    CENTRES = "CENTRES"
    SUMMARY = "SUMMARY"
    MAX_MOVES = "MAX_MOVES"
    TOLERANCE = "TOLERANCE"
    ID_FIELD = "ID_FIELD"
    ACTIVE_FIELD = "ACTIVE_FIELD"
    VISIT_MINUTES_FIELD = "VISIT_MINUTES_FIELD"
    VISIT_MINUTES = "VISIT_MINUTES"
    VISITS_FIELD = "VISITS_FIELD"
    COMPARE_ACCOUNTS = "COMPARE_ACCOUNTS"
    COMPARE_TERRITORY_FIELD = "COMPARE_TERRITORY_FIELD"
    BACKTEST_FIELD = "BACKTEST_FIELD"
    OUTPUT_HTML = "OUTPUT_HTML"
    OUTPUT_CSV = "OUTPUT_CSV"
    OUTPUT = "OUTPUT"

    def initAlgorithm(self, config=None) -> None:
        self.addParameter(QgsProcessingParameterFeatureSource(self.ACCOUNTS, self.tr("Accounts")))
        self.addParameter(
            QgsProcessingParameterField(
                self.TERRITORY_FIELD, self.tr("Territory field"), "territory_id", self.ACCOUNTS
            )
        )
        self.addParameter(
            QgsProcessingParameterField(
                self.BALANCE_FIELDS,
                self.tr("Balanced measures"),
                None,
                self.ACCOUNTS,
                QgsProcessingParameterField.Numeric,
                allowMultiple=True,
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterField(
                self.CURRENT_FIELD,
                self.tr("Current territory (disruption)"),
                None,
                self.ACCOUNTS,
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterFeatureSource(
                self.TERRITORIES,
                self.tr("Territory polygons (map; their capacity field weights the targets)"),
                [QgsProcessing.TypeVectorPolygon],
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterFeatureSource(
                self.CENTRES,
                self.tr("Rep homes or centres (map; rep_name or name fields give the legend)"),
                [QgsProcessing.TypeVectorPoint],
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterFeatureSource(
                self.SUMMARY,
                self.tr("Plan summary (capacities, optimality gap, disruption budget)"),
                [QgsProcessing.TypeVector],
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.MAX_MOVES,
                self.tr("Disruption budget: most accounts moved (% of accounts)"),
                QgsProcessingParameterNumber.Double,
                None,
                optional=True,
                minValue=0.0,
                maxValue=100.0,
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.TOLERANCE, self.tr("Tolerance (%)"), QgsProcessingParameterNumber.Double, 5.0
            )
        )
        self.addParameter(
            QgsProcessingParameterField(
                self.ACTIVE_FIELD,
                self.tr("Active prospect field (true/1/yes; empty = active_prospect or all)"),
                None,
                self.ACCOUNTS,
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterField(
                self.VISITS_FIELD,
                self.tr("Visits per year field (travel efficiency)"),
                None,
                self.ACCOUNTS,
                QgsProcessingParameterField.Numeric,
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterField(
                self.VISIT_MINUTES_FIELD,
                self.tr("Minutes per visit field (travel efficiency)"),
                None,
                self.ACCOUNTS,
                QgsProcessingParameterField.Numeric,
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.VISIT_MINUTES,
                self.tr("Minutes per visit (travel efficiency)"),
                QgsProcessingParameterNumber.Double,
                None,
                optional=True,
                minValue=0.0,
            )
        )
        self.addParameter(
            QgsProcessingParameterFeatureSource(
                self.COMPARE_ACCOUNTS,
                self.tr("Second plan to compare (accounts with the same ids)"),
                [QgsProcessing.TypeVectorPoint],
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterField(
                self.COMPARE_TERRITORY_FIELD,
                self.tr("Territory field of the second plan"),
                "territory_id",
                self.COMPARE_ACCOUNTS,
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterField(
                self.ID_FIELD,
                self.tr("Account id field (to match the second plan)"),
                "id",
                self.ACCOUNTS,
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterField(
                self.BACKTEST_FIELD,
                self.tr("Back-test field: last period's results (e.g. revenue_last_year)"),
                None,
                self.ACCOUNTS,
                QgsProcessingParameterField.Numeric,
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterFileDestination(
                self.OUTPUT_HTML, self.tr("Report"), "HTML files (*.html)"
            )
        )
        self.addParameter(
            QgsProcessingParameterFileDestination(
                self.OUTPUT_CSV, self.tr("Summary CSV"), "CSV files (*.csv)", optional=True
            )
        )
        # OUTPUT_HTML is already an HTML output (listed in the results viewer); OUTPUT is the same
        # path as a plain file output, so the report is listed once
        self.addOutput(QgsProcessingOutputFile(self.OUTPUT, self.tr("Report")))

    @engine_run
    def processAlgorithm(self, parameters, context, feedback):
        source = source_or_error(self, parameters, self.ACCOUNTS, context)
        field = self.parameterAsString(parameters, self.TERRITORY_FIELD, context) or "territory_id"
        balance = field_names(self, parameters, self.BALANCE_FIELDS, context)
        current = optional_field(self, parameters, self.CURRENT_FIELD, context)
        tolerance = self.parameterAsDouble(parameters, self.TOLERANCE, context)
        active = optional_field(self, parameters, self.ACTIVE_FIELD, context)
        visits = optional_field(self, parameters, self.VISITS_FIELD, context)
        minutes_field = optional_field(self, parameters, self.VISIT_MINUTES_FIELD, context)
        minutes = optional_number(self, parameters, self.VISIT_MINUTES, context)
        id_field = optional_field(self, parameters, self.ID_FIELD, context) or "id"
        backtest_field = optional_field(self, parameters, self.BACKTEST_FIELD, context)
        compare_field = (
            optional_field(self, parameters, self.COMPARE_TERRITORY_FIELD, context)
            or "territory_id"
        )
        html_path = self.parameterAsFileOutput(parameters, self.OUTPUT_HTML, context)
        csv_path = self.parameterAsFileOutput(parameters, self.OUTPUT_CSV, context)
        gdf = source_to_gdf(source, feedback=feedback, name=self.ACCOUNTS)
        second = None
        if parameters.get(self.COMPARE_ACCOUNTS) not in (None, ""):
            compare_source = source_or_error(self, parameters, self.COMPARE_ACCOUNTS, context)
            second = source_to_gdf(
                compare_source,
                feedback=feedback,
                name=self.COMPARE_ACCOUNTS,
                target_crs=gdf.crs,
                points=True,
            )
        plan_summary = None
        if parameters.get(self.SUMMARY) not in (None, ""):
            plan_summary = _table(source_or_error(self, parameters, self.SUMMARY, context))
        territories = centres = None
        if parameters.get(self.TERRITORIES) not in (None, ""):
            territories = source_to_gdf(
                source_or_error(self, parameters, self.TERRITORIES, context),
                feedback=feedback, name=self.TERRITORIES, target_crs=gdf.crs,
            )  # fmt: skip
        if parameters.get(self.CENTRES) not in (None, ""):
            centres = source_to_gdf(
                source_or_error(self, parameters, self.CENTRES, context),
                feedback=feedback, name=self.CENTRES, target_crs=gdf.crs, points=True,
            )  # fmt: skip
        max_moves = optional_number(self, parameters, self.MAX_MOVES, context)
        text, summary = report.build_report(
            gdf,
            territory_field=field,
            balance_fields=balance,
            current_field=current,
            tolerance_pct=tolerance,
            parameters={k: str(v) for k, v in parameters.items()},
            active_field=active,
            visit_minutes=minutes,
            visit_minutes_field=minutes_field,
            visits_field=visits,
            compare_accounts=second,
            compare_territory_field=compare_field,
            id_field=id_field,
            plan_summary=plan_summary,
            territories=territories,
            centres=centres,
            max_moves_pct=max_moves,
            backtest_field=backtest_field,
        )
        weighted = "capacity" in summary.columns
        feedback.pushInfo(
            "Balance targets weighted by rep capacity."
            if weighted
            else "Balance targets: the mean of the territories (no capacities in SUMMARY, "
            "TERRITORIES or CENTRES)."
        )
        if backtest_field:
            missing = int(pd.to_numeric(gdf[backtest_field], errors="coerce").isna().sum())
            feedback.pushInfo(
                f"Back-test on {backtest_field}: each rep's book old and new in the report"
                + (f"; {missing} account(s) without a value count as 0." if missing else ".")
            )
        with open(html_path, "w", encoding="utf-8") as fh:
            fh.write(text)
        results = {self.OUTPUT_HTML: html_path, self.OUTPUT: html_path}
        if csv_path:
            table = kpis.areas_counted(summary, report.is_plan_of_areas(gdf))
            table.to_csv(csv_path, index=False, encoding="utf-8")
            results[self.OUTPUT_CSV] = csv_path
        return results


def _table(source) -> pd.DataFrame:
    """The attributes of a feature source (a table or any layer) as a DataFrame, no geometry."""
    fields = source.fields()
    names = fields.names()
    columns: dict[str, list] = {n: [] for n in names}
    request = QgsFeatureRequest().setFlags(QgsFeatureRequest.NoGeometry)
    for feature in source.getFeatures(request):
        for name, value in zip(names, feature.attributes()):
            columns[name].append(_python_value(value))
    return pd.DataFrame({n: _column(fields.field(n), columns[n]) for n in names})
