"""Run inside QGIS desktop by scripts/screenshot.sh (``qgis --code``): take the README screenshots.

Once the main window is up: load the sample accounts and reps, open the Processing toolbox on the
Territory Planner provider, save the main window to ``toolbox.png``; open the 'Design territories'
dialog, save it to ``designterritories-dialog.png``; open the shipped model in the Model
Designer, save it to ``model.png``; run 'Design territories' on the sample data and save the
main window with the styled plan to ``designterritories-map.png``; open a plan in the Territory
editor beside it and save ``editor.png``; design territories from the sample areas
(``areas-qgis.png``) and edit that plan in the editor (``editor-areas.png``); quit QGIS. Paths come from the environment
(TP_SCREENSHOT_DIR, TP_SAMPLE_DATA, TP_SCREENSHOT_LOG). Any error is logged and QGIS exits at once.
"""

import os
import time
import traceback

from qgis.core import QgsApplication, QgsProject
from qgis.PyQt.QtCore import Qt, QTimer
from qgis.PyQt.QtGui import QColor
from qgis.PyQt.QtWidgets import QDockWidget
from qgis.utils import iface, plugins

OUT = os.environ.get("TP_SCREENSHOT_DIR", os.path.join(os.getcwd(), "docs", "screenshots"))
DATA = os.environ.get("TP_SAMPLE_DATA", "")
LOG = os.environ.get("TP_SCREENSHOT_LOG", "")
PROVIDER = "Territory Planner"
DIALOG_ALG = "territory_planner:designterritories"
MODEL_ALG = "territory_planner:territory_plan"
STATE = {}  # keeps the dialog alive between timer steps


def log(message):
    line = f"screenshot_qgis {time.strftime('%H:%M:%S')}: {message}"
    print(line, flush=True)
    if LOG:
        with open(LOG, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")


def step(func, delay_ms):
    """Run ``func`` after ``delay_ms`` in the event loop; any exception ends QGIS at once."""

    def guarded():
        try:
            func()
        except Exception:  # log everything, never hang
            log("FAILED\n" + traceback.format_exc())
            os._exit(1)

    QTimer.singleShot(delay_ms, guarded)


def save(widget, name):
    QgsApplication.processEvents()
    path = os.path.join(OUT, name)
    if not widget.grab().save(path, "PNG"):
        raise RuntimeError(f"could not save {path}")
    log(f"saved {path} ({widget.width()}x{widget.height()})")


def load_sample_layers():
    window = iface.mainWindow()
    window.setGeometry(0, 0, 1600, 1000)  # Xvfb has no window manager to maximise it
    if "territory_planner" not in plugins:
        raise RuntimeError(f"the plugin is not loaded; plugins: {sorted(plugins)}")
    for name in ("accounts", "reps"):
        path = os.path.join(DATA, f"{name}.gpkg")
        if DATA and os.path.isfile(path):
            layer = iface.addVectorLayer(f"{path}|layername={name}", name, "ogr")
            if layer is None or not layer.isValid():
                log(f"could not load {path}")
            elif name == "reps":  # reps stand out from the accounts
                symbol = layer.renderer().symbol()
                symbol.setSize(4.0)
                symbol.setColor(QColor("#d95f02"))
                layer.triggerRepaint()
    step(open_toolbox, 1500)


def zoom_to_reps():
    reps = QgsProject.instance().mapLayersByName("reps")
    if reps:  # the reps' extent: the sample accounts include a few far-away outliers on purpose
        canvas = iface.mapCanvas()  # in the canvas's CRS, whatever the layer's
        extent = canvas.mapSettings().layerExtentToOutputExtent(reps[0], reps[0].extent())
        canvas.setExtent(extent.buffered(max(extent.width(), extent.height()) * 0.4))
        canvas.refresh()


def _expand_provider(tree):
    """Collapse every provider but Territory Planner; expand it with its groups; return its row."""
    model = tree.model()
    found = None
    for row in range(model.rowCount()):
        index = model.index(row, 0)
        if model.data(index, Qt.DisplayRole) == PROVIDER:
            found = index
        else:
            tree.collapse(index)
    if found is None:
        return None
    tree.expand(found)
    for row in range(model.rowCount(found)):
        tree.expand(model.index(row, 0, found))
    tree.scrollTo(found, tree.PositionAtTop)
    return found


def open_toolbox():
    toolbox = plugins["processing"].toolbox
    toolbox.setVisible(True)
    toolbox.raise_()
    iface.mainWindow().resizeDocks([toolbox], [470], Qt.Horizontal)
    QgsApplication.processEvents()
    zoom_to_reps()
    tree = toolbox.algorithmTree
    toolbox.searchBox.setText(PROVIDER)  # the filter matches the provider name in QGIS 3.22+
    QgsApplication.processEvents()
    if tree.model().rowCount() == 0:  # filter matched nothing: show the provider node instead
        log("the search box matched nothing; expanding the provider node instead")
        toolbox.searchBox.clear()
    provider = _expand_provider(tree)
    if provider is None:
        raise RuntimeError(f"no '{PROVIDER}' node in the Processing toolbox")
    algorithms = []
    model = tree.model()
    for group_row in range(model.rowCount(provider)):
        group = model.index(group_row, 0, provider)
        for row in range(model.rowCount(group)):
            algorithms.append(model.data(model.index(row, 0, group), Qt.DisplayRole))
    log(f"toolbox shows: {algorithms}")
    for group_row in range(model.rowCount(provider)):
        group = model.index(group_row, 0, provider)
        for row in range(model.rowCount(group)):
            index = model.index(row, 0, group)
            if model.data(index, Qt.DisplayRole) == "Design territories":
                tree.setCurrentIndex(index)
    step(lambda: (save(iface.mainWindow(), "toolbox.png"), step(open_dialog, 200)), 1500)


def open_dialog():
    import processing

    project = QgsProject.instance()
    layers = {name: project.mapLayersByName(name) for name in ("accounts", "reps")}
    parameters = {}
    if layers["accounts"] and layers["reps"]:  # what a user would pick for the sample data
        parameters = {
            "ACCOUNTS": layers["accounts"][0].id(),
            "ID_FIELD": "id",
            "REPS": layers["reps"][0].id(),
            "REP_ID_FIELD": "rep_id",
            "REP_CAPACITY_FIELD": "capacity",
            "BALANCE_FIELDS": ["revenue_potential", "workload_visits"],
            "TOLERANCE": 10,
        }
    dialog = processing.createAlgorithmDialog(DIALOG_ALG, parameters)
    if dialog is None:
        raise RuntimeError(f"{DIALOG_ALG} not found")
    STATE["dialog"] = dialog
    dialog.resize(1000, 820)
    dialog.show()
    dialog.raise_()
    step(lambda: (save(dialog, "designterritories-dialog.png"), step(open_model, 200)), 1500)


def open_model():
    from processing.modeler.ModelerDialog import ModelerDialog

    dialog = STATE.pop("dialog", None)
    if dialog is not None:
        dialog.close()
    model = QgsApplication.processingRegistry().algorithmById(MODEL_ALG)
    if model is None:
        raise RuntimeError(f"{MODEL_ALG} not found")
    designer = ModelerDialog.create(model)
    STATE["designer"] = designer
    designer.resize(1400, 860)
    designer.show()
    designer.raise_()
    QgsApplication.processEvents()
    view = designer.view()
    view.fitInView(view.scene().itemsBoundingRect().adjusted(-20, -20, 20, 20), Qt.KeepAspectRatio)
    step(lambda: (save(designer, "model.png"), step(design_plan, 200)), 1500)


def design_plan():
    """Run 'Design territories' as the dialog above would and show the styled plan on the map."""
    import processing

    designer = STATE.pop("designer", None)
    if designer is not None:
        designer.setDirty(False) if hasattr(designer, "setDirty") else None
        designer.close()
    project = QgsProject.instance()
    layers = {name: project.mapLayersByName(name) for name in ("accounts", "reps")}
    if not (layers["accounts"] and layers["reps"]):
        raise RuntimeError("the sample accounts and reps are not loaded")
    processing.runAndLoadResults(
        DIALOG_ALG,
        {
            "ACCOUNTS": layers["accounts"][0].id(),
            "ID_FIELD": "id",
            "REPS": layers["reps"][0].id(),
            "REP_ID_FIELD": "rep_id",
            "REP_CAPACITY_FIELD": "capacity",
            "BALANCE_FIELDS": ["revenue_potential", "workload_visits"],
            "TOLERANCE": 10,
            "OUTPUT_ACCOUNTS": "TEMPORARY_OUTPUT",
            "OUTPUT_TERRITORIES": "TEMPORARY_OUTPUT",
            "OUTPUT_CENTRES": "TEMPORARY_OUTPUT",
        },
    )
    root = project.layerTreeRoot()
    for layer in layers["accounts"] + layers["reps"]:  # the plan's own layers show them
        node = root.findLayer(layer.id())
        if node is not None:
            node.setItemVisibilityChecked(False)
    group = root.findGroup("Territory Planner")
    if group is None:
        raise RuntimeError("no 'Territory Planner' group after designterritories")
    order = [child.name() for child in group.children()]
    log(f"Territory Planner group (top to bottom): {order}")
    plugins["processing"].toolbox.setVisible(False)
    group.setExpanded(True)
    for child in group.children():
        child.setExpanded(True)  # the legend: one colour per territory
    browser = iface.mainWindow().findChild(QDockWidget, "Browser")
    if browser is not None:
        browser.setVisible(False)  # room for the layer tree
    canvas = iface.mapCanvas()
    accounts = project.mapLayersByName("Accounts with territory")
    if accounts:  # where the accounts are: a few far outliers would shrink the map
        extent = canvas.mapSettings().layerExtentToOutputExtent(accounts[0], _core(accounts[0]))
        canvas.setExtent(extent.buffered(max(extent.width(), extent.height()) * 0.15))
    canvas.refresh()
    step(save_map, 3000)


def _core(layer):
    """The extent of the middle 96 % of ``layer``'s points along each axis."""
    from qgis.core import QgsRectangle

    xs, ys = [], []
    for feature in layer.getFeatures():
        point = feature.geometry().asPoint()
        xs.append(point.x())
        ys.append(point.y())
    xs.sort()
    ys.sort()
    lo, hi = int(0.02 * (len(xs) - 1)), int(0.98 * (len(xs) - 1))
    return QgsRectangle(xs[lo], ys[lo], xs[hi], ys[hi])


def save_map():
    save(iface.mainWindow(), "designterritories-map.png")
    group = QgsProject.instance().layerTreeRoot().findGroup("Territory Planner")
    if group is not None:  # the editor shows a plan of its own (its layers may join the group)
        for child in group.children():
            child.setItemVisibilityChecked(False)
            child.setExpanded(False)
    step(open_editor, 200)


def quit_qgis():
    QgsProject.instance().setDirty(False)  # no "save the project?" question
    log("done; quitting QGIS")
    step(lambda: os._exit(0), 10000)  # in case the normal exit hangs
    iface.actionExit().trigger()


def open_editor():
    """The Territory editor beside a styled plan of the sample data: ``editor.png``."""
    import processing
    from qgis.core import (
        QgsCategorizedSymbolRenderer,
        QgsProcessing,
        QgsRendererCategory,
        QgsSymbol,
    )

    designer = STATE.pop("designer", None)
    if designer is not None:
        designer.setDirty(False) if hasattr(designer, "setDirty") else None
        designer.close()
    project = QgsProject.instance()
    accounts, reps = project.mapLayersByName("accounts")[0], project.mapLayersByName("reps")[0]
    result = processing.run(DIALOG_ALG, {
        "ACCOUNTS": accounts.id(), "ID_FIELD": "id", "REPS": reps.id(), "REP_ID_FIELD": "rep_id",
        "REP_CAPACITY_FIELD": "capacity", "BALANCE_FIELDS": ["revenue_potential", "workload_visits"],
        "TOLERANCE": 10, "LOCK_FIELD": "locked_to",
        "OUTPUT_ACCOUNTS": QgsProcessing.TEMPORARY_OUTPUT,
        "OUTPUT_TERRITORIES": QgsProcessing.TEMPORARY_OUTPUT,
        "OUTPUT_CENTRES": QgsProcessing.TEMPORARY_OUTPUT,
        "OUTPUT_SUMMARY": QgsProcessing.TEMPORARY_OUTPUT,
    })  # fmt: skip
    for layer in (accounts,):
        project.layerTreeRoot().findLayer(layer.id()).setItemVisibilityChecked(False)
    from qgis.core import QgsVectorLayer

    def as_layer(value, name):
        layer = value if isinstance(value, QgsVectorLayer) else QgsVectorLayer(value, name, "ogr")
        layer.setName(name)
        project.addMapLayer(layer)
        return layer

    centres = as_layer(result["OUTPUT_CENTRES"], "plan centres")
    plan = as_layer(result["OUTPUT_ACCOUNTS"], "plan accounts")
    iface.setActiveLayer(plan)
    entry = plugins["territory_planner"].editor
    dock = entry.show(plan)
    dock.capacity_combo.setLayer(centres)
    dock.tolerance_spin.setValue(10.0)
    if not dock.load():
        raise RuntimeError(f"the editor did not load the plan: {dock.message_label.text()}")
    categories = []
    for key, colour in dock.colours.items():
        symbol = QgsSymbol.defaultSymbol(plan.geometryType())
        symbol.setColor(QColor(colour))
        symbol.setSize(2.4)
        categories.append(QgsRendererCategory(key, symbol, key))
    plan.setRenderer(QgsCategorizedSymbolRenderer("territory_id", categories))
    plan.triggerRepaint()
    # a manager's edit: five accounts of the first territory handed to the second, five selected
    keys = list(dock.colours)
    first = [f.id() for f in plan.getFeatures() if str(f["territory_id"]) == keys[0]]
    plan.selectByIds(first[:5])
    dock.assign_selection(keys[1])
    plan.selectByIds(first[5:9])
    dock.target_combo.setCurrentText(keys[2])
    iface.mainWindow().resizeDocks([dock], [780], Qt.Horizontal)
    plugins["processing"].toolbox.setVisible(False)
    zoom_to_reps()
    log(f"editor shows: {dock.plan_label.text()}")
    step(lambda: (save(iface.mainWindow(), "editor.png"), step(areas_plan, 200)), 2500)


def areas_plan():
    """'Design territories' from the sample areas (UNITS, in one piece) with the accounts counted
    in them, loaded with its stored styles as a user gets it: ``areas-qgis.png``."""
    import processing

    log("areas plan: starting")
    entry = plugins["territory_planner"].editor
    if getattr(entry, "dock", None) is not None:
        entry.dock.setVisible(False)
    project = QgsProject.instance()
    root = project.layerTreeRoot()
    accounts = project.mapLayersByName("accounts")[0]
    log("areas plan: hiding the earlier plans")
    # the earlier plans stay, hidden in a group of their own (removing layers while the canvas
    # renders them hung QGIS 3.22 here), so the new plan gets a "Territory Planner" group
    for layer in project.mapLayers().values():
        node = root.findLayer(layer.id())
        if node is not None:
            node.setItemVisibilityChecked(False)
    for group in root.findGroups():
        group.setName("Earlier plans")
        group.setItemVisibilityChecked(False)
        group.setExpanded(False)
    from qgis.core import QgsCoordinateReferenceSystem

    project.setCrs(QgsCoordinateReferenceSystem("EPSG:32635"))  # metric (UTM 35N), same datum
    from qgis.core import QgsVectorLayer

    areas = QgsVectorLayer(f"{os.path.join(DATA, 'areas.gpkg')}|layername=areas", "areas", "ogr")
    project.addMapLayer(areas, False)  # at the root, below the plan's group
    root.addLayer(areas)
    log("areas plan: designing")
    processing.runAndLoadResults(DIALOG_ALG, {
        "UNITS": areas.id(), "UNIT_ID_FIELD": "area_id", "ACCOUNTS": accounts.id(), "ID_FIELD": "id",
        "BALANCE_FIELDS": ["revenue_potential", "workload_visits"], "TERRITORIES": 5,
        "TOLERANCE": 10, "UNIT_MAX_DISTANCE": 3000, "SEED": 0, "TIME_LIMIT": 15,
        "OUTPUT_UNITS": "TEMPORARY_OUTPUT", "OUTPUT_TERRITORIES": "TEMPORARY_OUTPUT",
        "OUTPUT_CENTRES": "TEMPORARY_OUTPUT", "OUTPUT_SUMMARY": "TEMPORARY_OUTPUT",
    })  # fmt: skip
    root.findLayer(areas.id()).setItemVisibilityChecked(False)
    shown = sorted(layer.name() for layer in project.mapLayers().values()
                   if root.findLayer(layer.id()) is not None
                   and root.findLayer(layer.id()).isVisible())  # fmt: skip
    log(f"areas plan layers shown: {shown}")
    canvas = iface.mapCanvas()
    extent = canvas.mapSettings().layerExtentToOutputExtent(areas, areas.extent())
    canvas.setExtent(extent.buffered(max(extent.width(), extent.height()) * 0.05))
    canvas.refresh()
    step(_expand_areas_legend, 2500)


def _expand_areas_legend():
    """The new plan's group open, the units' legend shown (they carry the territories' colours)."""
    root = QgsProject.instance().layerTreeRoot()
    view = iface.layerTreeView()
    for node in root.children():
        index = view.node2index(node)
        if node.name() != "Territory Planner":
            view.collapse(index)
            continue
        view.expand(index)
        for child in node.children():
            if child.name() == "Units with territory":
                view.expand(view.node2index(child))
            else:
                view.collapse(view.node2index(child))
    step(lambda: (save(iface.mainWindow(), "areas-qgis.png"), step(editor_on_areas, 200)), 1500)


def editor_on_areas():
    """The Territory editor on the plan of areas after a hand edit (three areas of the first
    territory that touch the second handed to it): the territories redrawn, ``editor-areas.png``."""
    project = QgsProject.instance()
    units = project.mapLayersByName("Units with territory")[0]
    iface.setActiveLayer(units)
    dock = plugins["territory_planner"].editor.show(units)
    if not dock.load():
        raise RuntimeError(f"the editor did not load the areas: {dock.message_label.text()}")
    log(f"editor on areas: {dock.plan_label.text()}")
    drawn = [layer for layer in project.mapLayers().values() if layer.id() in dock._drawn]
    if len(drawn) != 1:
        raise RuntimeError(f"the editor follows {len(drawn)} territory layers, not the plan's one")
    first, second = list(dock.colours)[:2]
    edge = next(f.geometry() for f in drawn[0].getFeatures() if f["territory_id"] == second)
    picked = [f.id() for f in units.getFeatures()
              if f["territory_id"] == first and f.geometry().touches(edge)][:3]  # fmt: skip
    units.selectByIds(picked)
    dock.assign_selection(second)
    units.removeSelection()
    notes = [dock.warning_list.item(i).text() for i in range(dock.warning_list.count())]
    log(f"editor on areas after moving {len(picked)} areas {first} -> {second}: "
        f"{dock.plan_label.text()} {notes}")  # fmt: skip
    shown = dock.figures().set_index("territory")
    for f in sorted(drawn[0].getFeatures(), key=lambda f: f["territory_id"]):
        t = f["territory_id"]
        log(f"editor on areas: {t} layer units {f['units']} accounts {f['accounts']} "
            f"panel {int(shown.loc[t, 'count'])}")  # fmt: skip
    iface.mainWindow().resizeDocks([dock], [780], Qt.Horizontal)
    step(lambda: (save(iface.mainWindow(), "editor-areas.png"), step(quit_qgis, 200)), 2500)


log("QGIS is up; waiting for the main window")
step(load_sample_layers, 3000)
