"""The Territory editor panel driven as a user would: pick a plan, select, assign, undo, redo,
lock, re-optimise; the table's figures are compared with the engine's KPIs (report.kpis and
kpis.balance) of the assignment read back from the layer."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

N_PER = 12  # accounts per territory in the test plan
TERRITORIES = ("T1", "T2", "T3")


@pytest.fixture
def editor(plugin_on_path, qgis_iface, qgis_new_project):
    from territory_planner.gui.territory_editor import EditorDock

    dock = EditorDock(qgis_iface)
    yield dock
    dock.detach()
    dock.deleteLater()


def _plan_layers(name: str = "plan"):
    """A plan of 36 accounts in three territories (memory layers, EPSG:3067) and its centres."""
    from qgis.core import QgsFeature, QgsGeometry, QgsPointXY, QgsProject, QgsVectorLayer

    rng = np.random.default_rng(4)
    layer = QgsVectorLayer(
        "Point?crs=EPSG:3067&field=account_id:string&field=territory_id:string"
        "&field=locked:boolean&field=moved:boolean&field=input_territory_id:string"
        "&field=revenue_potential:double&field=workload_visits:double",
        name, "memory",
    )  # fmt: skip
    feats = []
    for j, t in enumerate(TERRITORIES):
        for i in range(N_PER):
            f = QgsFeature(layer.fields())
            x = 385_000 + j * 5_000 + rng.uniform(0, 4_000)
            y = 6_672_000 + rng.uniform(0, 4_000)
            f.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(x, y)))
            f.setAttributes([f"A{j}{i}", t, False, False, t,
                             float(rng.integers(50, 150)), float(rng.integers(1, 9))])  # fmt: skip
            feats.append(f)
    layer.dataProvider().addFeatures(feats)
    centres = QgsVectorLayer(
        "Point?crs=EPSG:3067&field=territory_id:string&field=capacity:double", "centres", "memory"
    )
    cf = []
    for j, t in enumerate(TERRITORIES):
        f = QgsFeature(centres.fields())
        f.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(387_000 + j * 5_000, 6_674_000)))
        f.setAttributes([t, 1.0])
        cf.append(f)
    centres.dataProvider().addFeatures(cf)
    QgsProject.instance().addMapLayers([layer, centres])
    return layer, centres


def _design_into_project(run_alg, params: dict, **outputs) -> list:
    """Run Design territories with ``params`` and add its ``outputs`` (layer name -> file) to
    the project, as a user opening them would; returns those layers in that order."""
    from qgis.core import QgsProject, QgsVectorLayer

    run_alg("designterritories", params)
    layers = [QgsVectorLayer(str(path), name, "ogr") for name, path in outputs.items()]
    QgsProject.instance().addMapLayers(layers)
    return layers


def _frame(layer) -> pd.DataFrame:
    rows = [{n: f[n] for n in ("territory_id", "input_territory_id", "revenue_potential",
                                "workload_visits", "locked")} for f in layer.getFeatures()]  # fmt: skip
    return pd.DataFrame(rows)


def _same_as_kpis(dock, layer) -> None:
    """The panel's figures equal the engine's KPIs of the layer's assignment as it is now."""
    from territory_planner.territory_planner_plugin import kpis
    from territory_planner.territory_planner_plugin import report as rpt

    df = _frame(layer)
    fields = ["revenue_potential", "workload_visits"]
    capacity = dict.fromkeys(TERRITORIES, 1.0)
    shown = dock.figures().set_index("territory")
    summary = rpt.territory_summary(df, territory_field="territory_id", balance_fields=fields)
    ref = kpis.balance(summary, territory_field="territory_id", measures=fields,
                       capacity=capacity)  # fmt: skip
    for rec in ref.table.to_dict("records"):
        row = shown.loc[rec["territory_id"]]
        assert row["count"] == rec["accounts"]
        for m in fields:
            assert row[f"{m}_total"] == pytest.approx(rec[f"{m}_total"])
            assert row[f"{m}_dev_pct"] == pytest.approx(rec[f"{m}_dev_pct"], abs=0.006)
    got = rpt.kpis(df, territory_field="territory_id", balance_fields=fields,
                   current_field="input_territory_id", capacity=capacity)  # fmt: skip
    plan = dock.table.plan()
    assert plan.max_deviation_pct == pytest.approx(got["max_deviation_pct"])
    assert plan.moved == got["accounts_moved"]
    for m in fields:
        assert plan.cv[m] == pytest.approx(got[f"cv_{m}"])
    # the table widget shows the same counts
    headers = [dock.grid.horizontalHeaderItem(j).text() for j in range(dock.grid.columnCount())]
    col = headers.index("Count")
    counts = {dock.grid.item(i, 1).text(): dock.grid.item(i, col).text()
              for i in range(dock.grid.rowCount())}  # fmt: skip
    assert counts == {t: f"{int(shown.loc[t, 'count']):,}" for t in shown.index}


def _settle() -> None:
    from qgis.core import QgsApplication

    for _ in range(5):
        QgsApplication.processEvents()


def _fids(layer, territory: str, n: int) -> list[int]:
    return [f.id() for f in layer.getFeatures() if f["territory_id"] == territory][:n]


def test_prefill_assign_undo_redo_lock_and_kpis(editor) -> None:
    layer, centres = _plan_layers()
    editor.set_layer(layer)
    assert editor.territory_combo.currentField() == "territory_id"
    assert editor.lock_combo.currentField() == "locked"
    assert editor.current_combo.currentField() == "input_territory_id"
    assert editor.capacity_combo.currentLayer() is centres
    assert editor.balance_combo.checkedItems() == ["revenue_potential", "workload_visits"]
    assert editor.load()
    _same_as_kpis(editor, layer)
    assert editor.figures()["travel_km"].notna().all()  # centres are the reps' bases

    moved = _fids(layer, "T1", 4)
    layer.selectByIds(moved)
    editor.target_combo.setCurrentText("T2")
    assert "Preview (4 selected → T2)" in editor.preview_label.text()
    assert editor.figures().set_index("territory").loc["T1", "count"] == N_PER  # not applied
    assert editor.assign_selection()
    assert layer.isEditable()
    assert {layer.getFeature(f)["territory_id"] for f in moved} == {"T2"}
    counts = editor.figures().set_index("territory")["count"]
    assert (counts["T1"], counts["T2"]) == (N_PER - 4, N_PER + 4)
    _same_as_kpis(editor, layer)

    layer.undoStack().undo()
    _settle()
    assert editor.figures().set_index("territory").loc["T1", "count"] == N_PER
    _same_as_kpis(editor, layer)
    layer.undoStack().redo()
    _settle()
    assert editor.figures().set_index("territory").loc["T1", "count"] == N_PER - 4
    _same_as_kpis(editor, layer)

    layer.selectByIds(moved[:2])
    assert editor.lock_selection(True)
    assert [layer.getFeature(f)["locked"] for f in moved[:2]] == [True, True]
    assert editor.table.locked[[editor.row_of[f] for f in moved[:2]]].all()
    assert editor.lock_selection(False)
    assert not editor.table.locked.any()
    # an edit in the attribute table (not through the panel) is followed too
    layer.changeAttributeValue(moved[3], layer.fields().indexOf("territory_id"), "T3")
    _settle()
    _same_as_kpis(editor, layer)
    assert layer.commitChanges()
    _settle()
    _same_as_kpis(editor, layer)


def test_reoptimise_keeps_manual_edits_and_writes_approved_moves(editor) -> None:
    layer, _ = _plan_layers()
    editor.set_layer(layer)
    editor.tolerance_spin.setValue(15.0)
    assert editor.load()
    manual = _fids(layer, "T1", 5)
    layer.selectByIds(manual)
    assert editor.assign_selection("T3")
    assert editor.table.plan().outside > 0
    editor.reoptimise(wait=True)
    moves = editor.proposal
    assert moves is not None
    assert len(moves) > 0
    assert "Proposed:" in editor.proposal_label.text()
    before = [layer.getFeature(f)["territory_id"] for f in editor.fids]
    assert editor.apply_proposal()
    after = [layer.getFeature(f)["territory_id"] for f in editor.fids]
    assert sum(a != b for a, b in zip(before, after)) == len(moves)
    assert {layer.getFeature(f)["territory_id"] for f in manual} == {"T3"}
    assert editor.table.plan().outside == 0
    _same_as_kpis(editor, layer)
    layer.undoStack().undo()  # the approved moves are one undoable command
    _settle()
    assert [layer.getFeature(f)["territory_id"] for f in editor.fids] == before


def test_reoptimise_runs_as_a_background_task(editor) -> None:
    layer, _ = _plan_layers()
    editor.set_layer(layer)
    editor.tolerance_spin.setValue(15.0)
    assert editor.load()
    layer.selectByIds(_fids(layer, "T1", 5))
    assert editor.assign_selection("T3")
    editor.reoptimise()
    assert editor.task is not None
    deadline = time.time() + 60
    while editor.proposal is None and time.time() < deadline:
        _settle()
        time.sleep(0.05)
    assert editor.proposal is not None
    assert len(editor.proposal) > 0


def test_edit_mode_elsewhere_rollback_and_emptied_territory(editor) -> None:
    layer, _ = _plan_layers()
    editor.set_layer(layer)
    assert editor.load()
    layer.startEditing()  # e.g. the user is editing in the attribute table
    layer.selectByIds(_fids(layer, "T3", N_PER))
    assert editor.assign_selection("T1")
    shown = editor.figures().set_index("territory")
    assert shown.loc["T3", "count"] == 0  # still listed, emptied by hand
    assert shown.loc["T3", "revenue_potential_dev_pct"] == pytest.approx(-100.0)
    assert any("T3 has no accounts" in editor.warning_list.item(i).text()
               for i in range(editor.warning_list.count()))  # fmt: skip
    layer.rollBack()
    _settle()
    assert editor.figures().set_index("territory").loc["T3", "count"] == N_PER
    _same_as_kpis(editor, layer)


def test_read_only_layer_changes_nothing_and_says_so(editor) -> None:
    layer, _ = _plan_layers()
    layer.setReadOnly(True)
    editor.set_layer(layer)
    assert editor.load()
    ids = _fids(layer, "T1", 3)
    layer.selectByIds(ids)
    assert not editor.assign_selection("T2")
    assert "read-only" in editor.message_label.text()
    assert {layer.getFeature(f)["territory_id"] for f in ids} == {"T1"}
    assert editor.figures().set_index("territory").loc["T1", "count"] == N_PER


def test_renamed_field_and_removed_layer_reset_the_panel(editor) -> None:
    from qgis.core import QgsProject

    layer, _ = _plan_layers()
    editor.set_layer(layer)
    assert editor.load()
    layer.startEditing()
    layer.renameAttribute(layer.fields().indexOf("revenue_potential"), "revenue")
    _settle()
    assert editor.table is None
    assert "revenue_potential" in editor.plan_label.text()
    assert "pick the fields again" in editor.plan_label.text()
    layer.rollBack()
    assert editor.load()
    QgsProject.instance().removeMapLayer(layer.id())
    _settle()
    assert editor.table is None
    assert "removed" in editor.plan_label.text()
    assert not editor.assign_button.isEnabled()


def test_plugin_adds_and_removes_the_menu_and_toolbar_entry(plugin_on_path, qgis_iface) -> None:
    from territory_planner.gui.territory_editor import TITLE, EditorEntry

    entry = EditorEntry(qgis_iface)
    assert entry.action.text() == TITLE
    dock = entry.show()
    assert dock.windowTitle() == TITLE
    entry.unload()
    assert entry.dock is None


def test_plan_settings_travel_with_the_outputs_and_prefill_the_panel(
    editor, run_alg, accounts_gpkg, tmp_path
) -> None:
    """A plan written by Design territories opens later (fresh layer, stored style) with its
    tolerance and balance fields, and the panel takes them instead of its defaults; of two
    centres layers with the plan's territory ids and capacities, it takes the plan's own (the
    same run's, and of those the centres, which give the reps' bases), not another plan's."""
    from qgis.core import QgsProject, QgsVectorLayer
    from territory_planner.processing_algorithms.styles import plan_properties, set_plan_properties

    out = tmp_path / "out"
    out.mkdir()
    run_alg("designterritories", {
        "ACCOUNTS": f"{accounts_gpkg}|layername=accounts", "ID_FIELD": "id", "TERRITORIES": 4,
        "BALANCE_FIELDS": ["workload_visits"], "TOLERANCE": 7.5, "TIME_LIMIT": 20,
        "OUTPUT_ACCOUNTS": str(out / "plan.gpkg"), "OUTPUT_TERRITORIES": "TEMPORARY_OUTPUT",
        "OUTPUT_CENTRES": str(out / "centres.gpkg"), "OUTPUT_SUMMARY": str(out / "summary.gpkg"),
    })  # fmt: skip
    (out / "plan.qml").unlink()  # the GeoPackage's default style alone must carry them
    layer = QgsVectorLayer(str(out / "plan.gpkg"), "plan", "ogr")
    assert layer.isValid()
    stored = plan_properties(layer)
    plan_id = stored.pop("plan_id")
    assert stored == {
        "tolerance_pct": "7.5", "balance_fields": "workload_visits", "lock_field": "locked"
    }  # fmt: skip
    centres = QgsVectorLayer(str(out / "centres.gpkg"), "centres", "ogr")
    assert plan_properties(centres)["plan_id"] == plan_id  # one run, one id
    other = QgsVectorLayer(str(out / "centres.gpkg"), "another plan's centres", "ogr")
    set_plan_properties(other, {"plan_id": "another run"})
    summary = QgsVectorLayer(str(out / "summary.gpkg"), "a summary", "ogr")  # (no rep bases)
    set_plan_properties(summary, {"plan_id": plan_id})  # (as a temporary output has it)
    QgsProject.instance().addMapLayers([other, summary, layer, centres])  # (the others first)
    assert editor.tolerance_spin.value() != 7.5
    editor.set_layer(layer)
    assert editor.tolerance_spin.value() == 7.5
    assert editor.balance_combo.checkedItems() == ["workload_visits"]
    assert editor.capacity_combo.currentLayer() is centres


def test_units_plan_is_reoptimised_as_units_in_one_piece(editor) -> None:
    """A plan of areas (6 x 6 grid, two territories) edited by hand: the proposal keeps
    every territory one piece and the panel's pieces column says so."""
    from qgis.core import QgsFeature, QgsGeometry, QgsProject, QgsRectangle, QgsVectorLayer

    layer = QgsVectorLayer("Polygon?crs=EPSG:3067&field=unit:string&field=territory_id:string"
                           "&field=population:double", "units", "memory")  # fmt: skip
    feats = []
    for i in range(36):
        x, y = 380_000 + (i % 6) * 1000, 6_670_000 + (i // 6) * 1000
        f = QgsFeature(layer.fields())
        f.setGeometry(QgsGeometry.fromRect(QgsRectangle(x, y, x + 1000, y + 1000)))
        f.setAttributes([f"U{i:02d}", "W" if i % 6 < 3 else "E", 10.0])
        feats.append(f)
    layer.dataProvider().addFeatures(feats)
    QgsProject.instance().addMapLayer(layer)
    editor.set_layer(layer)
    editor.balance_combo.setCheckedItems(["population"])
    editor.tolerance_spin.setValue(10.0)
    assert editor.load()
    ids = sorted(f.id() for f in layer.getFeatures())
    layer.selectByIds([ids[3], ids[9]])
    assert editor.assign_selection("W")
    assert editor.table.plan().outside > 0
    editor.reoptimise(wait=True)
    assert editor.proposal is not None
    assert len(editor.proposal)
    assert editor.apply_proposal()
    assert editor.table.plan().outside == 0
    assert editor.figures().set_index("territory")["pieces"].to_dict() == {"E": 1, "W": 1}


def test_tiers_of_a_hybrid_plan_each_have_their_own_targets(editor) -> None:
    """A plan with a ``tier`` field (coverage models): named and geographic territories are
    judged against their own tier's targets, as in the summary and the report."""
    from qgis.core import QgsFeature, QgsGeometry, QgsPointXY, QgsProject, QgsVectorLayer

    layer = QgsVectorLayer(
        "Point?crs=EPSG:3067&field=account_id:string&field=territory_id:string"
        "&field=tier:string&field=revenue_potential:double",
        "hybrid", "memory",
    )  # fmt: skip
    feats = []
    for i, (t, tier, value) in enumerate(
        [("N1", "named", 500.0), ("N2", "named", 500.0)] * 2
        + [("T1", "geographic", 50.0), ("T2", "geographic", 50.0)] * 6
    ):
        f = QgsFeature(layer.fields())
        f.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(385_000 + 300 * i, 6_672_000 + 90 * i)))
        f.setAttributes([f"A{i}", t, tier, value])
        feats.append(f)
    layer.dataProvider().addFeatures(feats)
    QgsProject.instance().addMapLayer(layer)
    editor.set_layer(layer)
    editor.balance_combo.setCheckedItems(["revenue_potential"])
    assert editor.load()
    shown = editor.figures().set_index("territory")
    assert shown.loc[["N1", "N2"], "revenue_potential_target"].tolist() == [1000.0, 1000.0]
    assert shown.loc[["T1", "T2"], "revenue_potential_target"].tolist() == [300.0, 300.0]
    assert (shown["revenue_potential_dev_pct"] == 0).all()


def test_plan_made_on_roads_shows_drive_minutes(editor, run_alg, accounts_gpkg, reps_gpkg,
                                                network_gpkg, tmp_path) -> None:  # fmt: skip
    """A plan made with NETWORK and REP_MAX_MINUTES pre-fills the panel's road network and
    drive-time limit, and the table's travel is in drive minutes, as the plan was judged."""

    out = tmp_path / "out"
    out.mkdir()
    layer, _ = _design_into_project(run_alg, {
        "ACCOUNTS": f"{accounts_gpkg}|layername=accounts", "ID_FIELD": "id",
        "REPS": f"{reps_gpkg}|layername=reps", "REP_ID_FIELD": "rep_id",
        "NETWORK": str(network_gpkg), "REP_MAX_MINUTES": 60, "TOLERANCE": 20,
        "BALANCE_FIELDS": ["workload_visits"], "TIME_LIMIT": 20,
        "OUTPUT_ACCOUNTS": str(out / "plan.gpkg"), "OUTPUT_TERRITORIES": "TEMPORARY_OUTPUT",
        "OUTPUT_CENTRES": str(out / "centres.gpkg"),
    }, plan=out / "plan.gpkg", centres=out / "centres.gpkg")  # fmt: skip
    editor.set_layer(layer)
    assert editor.network_widget.filePath() == str(network_gpkg)
    assert editor.max_minutes_spin.value() == 60
    assert editor.load()
    headers = [editor.grid.horizontalHeaderItem(j).text() for j in range(editor.grid.columnCount())]
    assert "Drive min" in headers
    shown = editor.figures().set_index("territory")
    assert np.isfinite(shown["travel_min"]).all()
    # each territory's drive minutes are the sum of its accounts' drive times to its rep
    import geopandas as gpd

    acc = gpd.read_file(out / "plan.gpkg")
    for t, part in acc.groupby("territory_id"):
        assert shown.loc[t, "travel_min"] == pytest.approx(part["centre_min"].sum(), rel=0.02)


def _territory_polygons(name, ids, counts, *, x0=385_000):
    """A Territories layer (memory, EPSG:3067) of squares side by side, one per territory, 5 km
    apart, with the ``accounts`` count of each."""
    from qgis.core import QgsFeature, QgsGeometry, QgsProject, QgsRectangle, QgsVectorLayer

    out = QgsVectorLayer("MultiPolygon?crs=EPSG:3067&field=territory_id:string&field=accounts:integer"
                         "&field=pieces:integer&field=revenue_potential_total:double",
                         name, "memory")  # fmt: skip
    feats = []
    for j, (t, n) in enumerate(zip(ids, counts)):
        f = QgsFeature(out.fields())
        x = x0 - 500 + j * 5_000
        f.setGeometry(QgsGeometry.fromRect(QgsRectangle(x, 6_671_500, x + 5_000, 6_676_500)))
        f.setAttributes([t, n, 1, 100.0])
        feats.append(f)
    out.dataProvider().addFeatures(feats)
    QgsProject.instance().addMapLayer(out)
    return out


def _polygon_of(layer, territory: str):
    return next(f.geometry() for f in layer.getFeatures() if f["territory_id"] == territory)


def test_territory_polygons_of_the_plan_follow_the_edits(editor) -> None:
    """The Territories layer of the plan (its counts are the plan's) is redrawn through its
    edit buffer as the plan is edited: outlines (Voronoi cells within the area it covered),
    counts, totals and pieces; undo draws it back. Territories of another plan with the same
    ids, and a layer of other ids, are left alone; one that cannot be edited is named stale."""
    from qgis.core import QgsGeometry, QgsPointXY

    layer, _ = _plan_layers()
    mine = _territory_polygons("Territories", TERRITORIES, [N_PER] * 3)
    other = _territory_polygons("Other plan's territories", TERRITORIES, [N_PER + 1, N_PER - 1,
                                                                        N_PER])  # fmt: skip
    elsewhere = _territory_polygons("Elsewhere", ["X1", "X2"], [N_PER, N_PER])
    outline = QgsGeometry.unaryUnion([f.geometry() for f in mine.getFeatures()])
    editor.set_layer(layer)
    assert editor.load()
    texts = lambda: [editor.warning_list.item(i).text() for i in range(editor.warning_list.count())]  # noqa: E731
    assert not any("still show" in t or "follows" in t for t in texts())
    moved = _fids(layer, "T1", 2)
    points = [layer.getFeature(f).geometry().asPoint() for f in moved]
    layer.selectByIds(moved)
    assert editor.assign_selection("T2")
    assert mine.isModified()
    assert not other.isModified()
    assert not elsewhere.isModified()
    assert [t for t in texts() if "follows the edits" in t] == [
        "ℹ 'Territories' follows the edits (outlines, counts, totals and pieces redrawn); save "
        "it with the plan layer to keep them."
    ]
    shown = editor.figures().set_index("territory")
    for f in mine.getFeatures():
        t = f["territory_id"]
        assert f["accounts"] == shown.loc[t, "count"] == {"T1": 10, "T2": 14, "T3": 12}[t]
        if t == "T3":  # untouched: as loaded (the test's made-up total)
            assert f["revenue_potential_total"] == 100.0
            continue
        assert f["revenue_potential_total"] == pytest.approx(
            shown.loc[t, "revenue_potential_total"], abs=0.01)  # fmt: skip
        assert f["pieces"] == shown.loc[t, "pieces"]
    for p in points:  # the moved accounts are inside T2's new outline, not T1's
        assert _polygon_of(mine, "T2").contains(QgsGeometry.fromPointXY(QgsPointXY(p)))
        assert not _polygon_of(mine, "T1").contains(QgsGeometry.fromPointXY(QgsPointXY(p)))
    for f in layer.getFeatures():  # every account lies in its own territory's outline
        assert _polygon_of(mine, f["territory_id"]).intersects(f.geometry())
    union = QgsGeometry.unaryUnion([f.geometry() for f in mine.getFeatures()])
    assert union.area() == pytest.approx(outline.area(), rel=1e-6)  # no gap, no overlap
    assert sum(f.geometry().area() for f in mine.getFeatures()) == pytest.approx(
        outline.area(), rel=1e-6)  # fmt: skip
    layer.undoStack().undo()
    _settle()
    assert [f["accounts"] for f in mine.getFeatures()] == [N_PER] * 3
    for p in points:
        assert _polygon_of(mine, "T1").contains(QgsGeometry.fromPointXY(QgsPointXY(p)))
    # a Territories layer that cannot be edited keeps the plan as loaded: named as stale
    mine.rollBack()
    mine.setReadOnly(True)
    assert editor.load()
    layer.selectByIds(_fids(layer, "T1", 2))
    assert editor.assign_selection("T2")
    assert not mine.isModified()
    assert [t for t in texts() if "still show" in t] == [
        "⚠ 'Territories' on the map still shows the plan as loaded (outlines and totals; the "
        "layer cannot be edited); this table is the plan as edited. Territory report on the "
        "edited layer maps the plan as edited."
    ]
    layer.undoStack().undo()
    _settle()
    assert not any("still show" in t for t in texts())


def test_territories_of_a_plan_of_areas_follow_the_edits(editor, run_alg, tmp_path) -> None:
    """Design territories on the sample areas, its units and territories in the project, two
    units moved by hand: the territories are redrawn as the dissolved units of the plan as
    edited (areas add up, no gap, no overlap), with the panel's counts and totals."""
    from qgis.core import QgsGeometry

    from .conftest import sample_file

    out = tmp_path / "out"
    out.mkdir()
    units, terr = _design_into_project(run_alg, {
        "UNITS": f"{sample_file('areas.gpkg')}|layername=areas", "UNIT_ID_FIELD": "area_id",
        "UNIT_BALANCE_FIELDS": ["population"], "TERRITORIES": 4, "TOLERANCE": 15,
        "TIME_LIMIT": 5, "OUTPUT_UNITS": str(out / "units.gpkg"),
        "OUTPUT_TERRITORIES": str(out / "territories.gpkg"),
    }, units=out / "units.gpkg", territories=out / "territories.gpkg")  # fmt: skip
    editor.set_layer(units)
    editor.balance_combo.setCheckedItems(["population"])
    editor.tolerance_spin.setValue(15.0)
    assert editor.load()
    assert list(editor._drawn) == [terr.id()]
    # two units of T01 that touch T02 go to T02
    t02 = _polygon_of(terr, "T02")
    touching = [f.id() for f in units.getFeatures()
                if f["territory_id"] == "T01" and f.geometry().touches(t02)][:2]  # fmt: skip
    assert len(touching) == 2
    units.selectByIds(touching)
    assert editor.assign_selection("T02")
    assert terr.isModified()
    shown = editor.figures().set_index("territory")
    area_of = {}
    for f in units.getFeatures():
        area_of[f["territory_id"]] = area_of.get(f["territory_id"], 0.0) + f.geometry().area()
    for f in terr.getFeatures():
        t = f["territory_id"]
        assert f["units"] == shown.loc[t, "count"]
        assert f["population_total"] == pytest.approx(shown.loc[t, "population_total"], abs=0.01)
        assert f["population_dev_pct"] == pytest.approx(shown.loc[t, "population_dev_pct"],
                                                        abs=0.01)  # fmt: skip
        assert f["pieces"] == shown.loc[t, "pieces"] == 1
        assert f.geometry().area() == pytest.approx(area_of[t], rel=1e-3)
    for fid in touching:
        inner = units.getFeature(fid).geometry().pointOnSurface()
        assert _polygon_of(terr, "T02").contains(inner)
        assert not _polygon_of(terr, "T01").contains(inner)
    union = QgsGeometry.unaryUnion([f.geometry() for f in terr.getFeatures()])
    assert sum(f.geometry().area() for f in terr.getFeatures()) == pytest.approx(union.area(),
                                                                                rel=1e-4)  # fmt: skip
    terr.rollBack()
    units.rollBack()


def test_accounts_of_a_plan_of_areas_point_to_the_areas(editor) -> None:
    """The accounts output of a plan of areas (points with unit_id): the panel says that an
    account moved alone splits its area and that the areas layer is where whole areas move and
    pieces are seen; no pieces are counted from the accounts (no false 'split' warnings)."""
    from qgis.core import QgsFeature, QgsGeometry, QgsPointXY, QgsProject, QgsVectorLayer

    layer = QgsVectorLayer("Point?crs=EPSG:3067&field=id:string&field=unit_id:string"
                           "&field=territory_id:string&field=revenue_potential:double",
                           "accounts of areas", "memory")  # fmt: skip
    feats = []
    for i in range(24):  # T1 on both sides of T2: as accounts, T1 is in two pieces
        f = QgsFeature(layer.fields())
        f.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(385_000 + 500 * i, 6_672_000)))
        f.setAttributes([f"A{i}", f"U{i // 4}", "T2" if 8 <= i < 16 else "T1", 10.0])
        feats.append(f)
    layer.dataProvider().addFeatures(feats)
    QgsProject.instance().addMapLayer(layer)
    terr = _territory_polygons("Territories", ["T1", "T2"], [16, 8])  # the plan's, by count
    editor.set_layer(layer)
    editor.balance_combo.setCheckedItems(["revenue_potential"])
    assert editor.load()
    texts = lambda: [editor.warning_list.item(i).text() for i in range(editor.warning_list.count())]  # noqa: E731
    assert any(
        t.startswith("⚠ These are the accounts of a plan of areas (unit_id)") for t in texts()
    )
    assert not any("split into" in t for t in texts()), texts()
    # an edit: the plan's territories are its areas', not redrawn from its accounts' cells
    layer.selectByIds(_fids(layer, "T1", 1))
    assert editor.assign_selection("T2")
    assert not terr.isModified()
    assert any("still shows the plan as loaded (outlines and totals; its areas)" in t
               for t in texts()), texts()  # fmt: skip
