"""territory_planner:compareplans - KPIs of several plans side by side, account differences, HTML."""

from __future__ import annotations

from qgis.core import (
    QgsFeatureRequest,
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
    QgsVectorLayer,
)

from ..territory_planner_plugin import compare
from ..territory_planner_plugin import kpis as plan_kpis
from .base import (
    PROJECTED,
    TerritoryPlannerAlgorithm,
    _python_value,
    check_cancelled,
    engine_callbacks,
    engine_run,
    sink_parameter,
    source_to_gdf,
    step_feedback,
    write_sink,
)


class ComparePlansAlgorithm(TerritoryPlannerAlgorithm):
    """Compare two or more plans (the first is the baseline): balance, compactness, disruption."""

    ALGORITHM_ID = "compareplans"
    DISPLAY_NAME = "Compare plans"
    GROUP = "Results"
    GROUP_ID = "results"

    PLANS = "PLANS"
    ID_FIELD = "ID_FIELD"
    TERRITORY_FIELD = "TERRITORY_FIELD"
    BALANCE_FIELDS = "BALANCE_FIELDS"
    PLAN_NAMES = "PLAN_NAMES"
    CAPACITIES = "CAPACITIES"
    TOLERANCE = "TOLERANCE"
    OUTPUT_KPIS = "OUTPUT_KPIS"
    OUTPUT_DIFFERENCES = "OUTPUT_DIFFERENCES"
    OUTPUT_HTML = "OUTPUT_HTML"
    OUTPUT = "OUTPUT"
    PLANS_COMPARED = "PLANS_COMPARED"

    def initAlgorithm(self, config=None) -> None:
        add = self.addParameter
        add(
            QgsProcessingParameterMultipleLayers(
                self.PLANS,
                self.tr("Plans: accounts layers with a territory (the first is the baseline)"),
                QgsProcessing.TypeVectorPoint,
            )
        )
        add(QgsProcessingParameterString(self.ID_FIELD, self.tr("Account id field"), "id"))
        add(
            QgsProcessingParameterString(
                self.TERRITORY_FIELD, self.tr("Territory field"), "territory_id"
            )
        )
        add(
            QgsProcessingParameterString(
                self.BALANCE_FIELDS,
                self.tr("Balanced measures, comma separated (empty = account counts)"),
                None,
                False,
                True,
            )
        )
        add(
            QgsProcessingParameterString(
                self.PLAN_NAMES,
                self.tr("Plan names, comma separated (empty = layer names)"),
                None,
                False,
                True,
            )
        )
        add(
            QgsProcessingParameterMultipleLayers(
                self.CAPACITIES,
                self.tr(
                    "Capacities: each plan's territories or summary (capacity field; in the "
                    "order of PLANS, or one for all plans)"
                ),
                QgsProcessing.TypeVector,
                optional=True,
            )
        )
        add(
            QgsProcessingParameterNumber(
                self.TOLERANCE,
                self.tr("Tolerance (%): judge each plan's balance against it"),
                QgsProcessingParameterNumber.Double,
                None,
                optional=True,
                minValue=0.0,
                maxValue=100.0,
            )
        )
        add(sink_parameter(self.OUTPUT_KPIS, self.tr("Plan KPIs"), QgsProcessing.TypeVector))
        add(
            sink_parameter(
                self.OUTPUT_DIFFERENCES,
                self.tr("Account differences"),
                QgsProcessing.TypeVector,
                optional=True,
            )
        )
        add(
            QgsProcessingParameterFileDestination(
                self.OUTPUT_HTML,
                self.tr("Comparison report"),
                "HTML files (*.html)",
                None,
                True,
            )
        )
        # OUTPUT_HTML is already an HTML output (the results viewer lists it): OUTPUT is a plain file
        self.addOutput(QgsProcessingOutputFile(self.OUTPUT, self.tr("Comparison report")))
        self.addOutput(QgsProcessingOutputNumber(self.PLANS_COMPARED, self.tr("Plans compared")))

    @engine_run
    def processAlgorithm(self, parameters, context, feedback):
        layers = self.parameterAsLayerList(parameters, self.PLANS, context)
        id_field = self.parameterAsString(parameters, self.ID_FIELD, context).strip() or "id"
        territory_field = (
            self.parameterAsString(parameters, self.TERRITORY_FIELD, context).strip()
            or "territory_id"
        )
        balance = _names_list(parameters.get(self.BALANCE_FIELDS))
        names = _names_list(parameters.get(self.PLAN_NAMES))
        html_path = self.parameterAsFileOutput(parameters, self.OUTPUT_HTML, context)
        if len(layers) < 2:
            raise QgsProcessingException(
                f"PLANS: give at least two plans to compare (got {len(layers)}); "
                "the first one is the baseline."
            )
        not_vector = [layer.name() for layer in layers if not isinstance(layer, QgsVectorLayer)]
        if not_vector:
            raise QgsProcessingException(
                f"PLANS: {', '.join(not_vector)} are not vector layers; give accounts layers."
            )
        if names and len(names) != len(layers):
            raise QgsProcessingException(
                f"PLAN_NAMES: {len(names)} name(s) for {len(layers)} plans; "
                "give one name per plan, in order (or leave it empty)."
            )
        names = names or compare.unique_names([layer.name() for layer in layers])

        capacities = _capacities(
            self.parameterAsLayerList(parameters, self.CAPACITIES, context), layers, names
        )
        tolerance = (
            None
            if parameters.get(self.TOLERANCE) in (None, "")
            else self.parameterAsDouble(parameters, self.TOLERANCE, context)
        )
        steps = step_feedback(feedback, len(layers) + 1)
        frames, target = [], PROJECTED
        for i, (layer, name) in enumerate(zip(layers, names)):
            steps.setCurrentStep(i)
            frame = source_to_gdf(
                layer, feedback=steps, name=f"plan '{name}'", target_crs=target, points=True
            )
            target = frame.crs if frame.crs is not None else target
            frames.append(frame)
        steps.setCurrentStep(len(layers))
        progress, is_cancelled = engine_callbacks(steps, root=feedback)
        comparison = compare.compare_plans(
            frames,
            names=names,
            id_field=id_field,
            territory_field=territory_field,
            balance_fields=balance,
            capacities=capacities,
            tolerance_pct=tolerance,
            progress=progress,
            is_cancelled=is_cancelled,
        )
        check_cancelled(feedback)

        results = {self.PLANS_COMPARED: len(frames)}
        table = plan_kpis.areas_counted(comparison.kpis, comparison.areas)
        results[self.OUTPUT_KPIS] = write_sink(
            self, parameters, self.OUTPUT_KPIS, context, table, feedback=feedback
        )
        results[self.OUTPUT_DIFFERENCES] = write_sink(
            self,
            parameters,
            self.OUTPUT_DIFFERENCES,
            context,
            comparison.differences,
            feedback=feedback,
            drop=(),
        )
        if html_path:
            text = compare.comparison_html(
                comparison, parameters={k: str(v) for k, v in parameters.items()}
            )
            with open(html_path, "w", encoding="utf-8") as fh:
                fh.write(text)
            results[self.OUTPUT_HTML] = html_path
            results[self.OUTPUT] = html_path
        feedback.pushInfo(compare.targets_sentence(comparison))
        for _, row in comparison.kpis.iterrows():
            feedback.pushInfo(
                f"{row['plan']}: {int(row['territories'])} territories, largest deviation "
                f"from target {row['max_deviation_pct']}%, compactness {row['compactness_km']} "
                f"km, {int(row['moved_vs_baseline'])} moved vs baseline."
            )
        return results


def _names_list(value) -> list[str]:
    """A list parameter value, or a comma/semicolon separated string, as a list of names."""
    if value is None:
        return []
    items = value if isinstance(value, (list, tuple)) else [value]
    out = []
    for item in items:
        out.extend(p.strip() for p in str(item).replace(";", ",").split(","))
    return [p for p in out if p]


def _capacities(tables, plans, names) -> list | None:
    """Capacity maps per plan from the CAPACITIES layers: one per plan, or one for all."""
    if not tables:
        return None
    if len(tables) not in (1, len(plans)):
        raise QgsProcessingException(
            f"CAPACITIES: {len(tables)} layer(s) for {len(plans)} plans; give one territories or "
            "summary layer per plan, in the order of PLANS, or one for all plans."
        )
    out = []
    for i, name in enumerate(names):
        layer = tables[i if len(tables) > 1 else 0]
        where = f"CAPACITIES ({layer.name()}, for plan '{name}')"
        table = plan_kpis.read_capacities(_attributes(layer), where=where)
        out.append(plan_kpis.capacity_map(table))
    return out


def _attributes(layer):
    """The attributes of a layer as a DataFrame (no geometry)."""
    import pandas as pd

    names = layer.fields().names()
    rows = [
        [_python_value(v) for v in f.attributes()]
        for f in layer.getFeatures(QgsFeatureRequest().setFlags(QgsFeatureRequest.NoGeometry))
    ]
    return pd.DataFrame(rows, columns=names)
