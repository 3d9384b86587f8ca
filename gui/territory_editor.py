"""The Territory editor dock panel: hand-tune a plan on the map and see its balance live.

A thin QGIS layer over :class:`territory_planner_plugin.editor.PlanTable`: it reads the plan
layer once, follows the layer's edits (attribute changes, undo, redo, features added or deleted,
rollback) and writes every change through the layer's edit buffer, so QGIS's undo, redo, save
and rollback work as usual.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import numpy as np
import pandas as pd
from qgis.core import (
    Qgis,
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsFeatureRequest,
    QgsGeometry,
    QgsMapLayerProxyModel,
    QgsProject,
    QgsTask,
    QgsVectorDataProvider,
    QgsVectorLayer,
    QgsWkbTypes,
)
from qgis.gui import (
    QgsCheckableComboBox,
    QgsCollapsibleGroupBox,
    QgsDockWidget,
    QgsFieldComboBox,
    QgsFileWidget,
    QgsMapLayerComboBox,
)
from qgis.PyQt.QtCore import QTimer, QVariant, pyqtSignal
from qgis.PyQt.QtGui import QBrush, QColor, QIcon
from qgis.PyQt.QtWidgets import (
    QAbstractItemView,
    QAction,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..processing_algorithms.styles import plan_properties
from ..territory_planner_plugin import kpis, palette
from ..territory_planner_plugin.editor import (
    NEAR,
    OUTSIDE,
    PlanTable,
    drive_minutes,
    point_adjacency,
    polygon_adjacency,
    reoptimise,
    territory_outlines,
)

TITLE = "Territory editor"
LOG_TAG = "Territory Planner"
STATUS_COLOURS = {"within": "#C8E6C9", NEAR: "#FFE0A3", OUTSIDE: "#F4B6B6"}
# fields a plan of this plugin has: pre-fill the pickers from them
PLAN_FIELDS = ("territory_id", "locked", "moved")
CURRENT_NAMES = ("input_territory_id", "current_territory", "current", "input_rep_id")
TERRITORY_NAMES = ("territory_id", "territory", "rep_id", "territory_code")


def is_plan_layer(layer) -> bool:
    """True for a layer of accounts from Design/Rebalance territories (its fields say so)."""
    if not isinstance(layer, QgsVectorLayer):
        return False
    names = set(layer.fields().names())
    return all(f in names for f in PLAN_FIELDS)


def _truthy(value) -> bool:
    if value is None or (isinstance(value, QVariant) and value.isNull()):
        return False
    if isinstance(value, str):
        return value.strip().lower() not in ("", "0", "false", "no", "f", "n", "null")
    try:
        return bool(value) and not (isinstance(value, float) and math.isnan(value))
    except (TypeError, ValueError):
        return False


def _plain(value):
    """A Python value of an attribute (NULL -> None)."""
    if value is None or (isinstance(value, QVariant) and value.isNull()):
        return None
    return value


def _same_plan(layer, other) -> bool | None:
    """True when both layers are outputs of one Design/Rebalance run, False when they are of
    different runs, None when one of them does not say (a layer made elsewhere)."""
    mine, theirs = plan_properties(layer).get("plan_id"), plan_properties(other).get("plan_id")
    return None if not mine or not theirs else mine == theirs


def _metric_crs(layer) -> QgsCoordinateReferenceSystem:
    """The layer's CRS when it is in metres, else the UTM zone of its extent's centre."""
    crs = layer.crs()
    if crs.isValid() and not crs.isGeographic():
        return crs
    to_wgs = QgsCoordinateTransform(crs, QgsCoordinateReferenceSystem("EPSG:4326"),
                                    QgsProject.instance())  # fmt: skip
    try:
        c = to_wgs.transform(layer.extent().center())
        lon, lat = c.x(), c.y()
    except Exception:
        lon, lat = 0.0, 0.0
    zone = int((lon + 180) // 6) % 60 + 1
    return QgsCoordinateReferenceSystem(f"EPSG:{(32600 if lat >= 0 else 32700) + zone}")


class EditorEntry:
    """The plugin's menu item and toolbar button for the panel, and the offer to open a plan
    that Design/Rebalance territories just added to the project."""

    def __init__(self, iface) -> None:
        self.iface = iface
        self.dock: EditorDock | None = None
        icon = QIcon(str(Path(__file__).parents[1] / "icons" / "territory_planner.svg"))
        self.action = QAction(icon, TITLE, iface.mainWindow())
        self.action.setObjectName("territoryPlannerEditor")
        self.action.setToolTip("Territory editor: hand-tune a plan with live balance")
        self.action.triggered.connect(self.show)
        iface.addPluginToMenu("&Territory Planner", self.action)
        iface.addToolBarIcon(self.action)
        QgsProject.instance().layersAdded.connect(self._offer)

    def show(self, layer=None) -> EditorDock:
        if self.dock is None:
            self.dock = EditorDock(self.iface)
            self.iface.addDockWidget(2, self.dock)  # Qt.RightDockWidgetArea
        self.dock.show()
        self.dock.raise_()
        if isinstance(layer, QgsVectorLayer):
            self.dock.set_layer(layer)
        return self.dock

    def _offer(self, layers) -> None:
        plans = [lyr for lyr in layers if is_plan_layer(lyr)]
        if not plans:
            return
        layer = plans[0]
        try:
            bar = self.iface.messageBar()
            widget = bar.createMessage(TITLE, f"'{layer.name()}' is a territory plan.")
            button = QPushButton("Open in the Territory editor", widget)
            button.clicked.connect(lambda: self.show(layer))
            widget.layout().addWidget(button)
            bar.pushWidget(widget, Qgis.Info, 15)
        except Exception:  # an interface without a message bar: no offer, nothing breaks
            pass

    def unload(self) -> None:
        with contextlib.suppress(TypeError):
            QgsProject.instance().layersAdded.disconnect(self._offer)
        self.iface.removePluginMenu("&Territory Planner", self.action)
        self.iface.removeToolBarIcon(self.action)
        if self.dock is not None:
            self.dock.detach()
            self.iface.removeDockWidget(self.dock)
            self.dock.deleteLater()
            self.dock = None


class EditorDock(QgsDockWidget):
    """The Territory editor panel (see the module docstring)."""

    updated = pyqtSignal()  # the table shows the plan as it is now (tests wait on it)
    proposal_ready = pyqtSignal()

    def __init__(self, iface, parent=None) -> None:
        super().__init__(TITLE, parent)
        self.setObjectName("TerritoryEditorDock")
        self.iface = iface
        self.layer: QgsVectorLayer | None = None
        self.table: PlanTable | None = None
        self.fids: list[int] = []
        self.row_of: dict[int, int] = {}
        self.loaded_territory: list = []
        self.colours: dict[str, str] = {}
        self.proposal: pd.DataFrame | None = None
        self.task: QgsTask | None = None
        self._pending: dict[int, object] = {}
        self._locks: dict[int, object] = {}
        self._reload_needed = False
        self._network = None  # (path, RoadNetwork) of the last road network read
        self._fields: dict = {}
        # Territories layers of this plan followed by the panel: layer id -> each row's
        # territory code when last drawn, and (plans of accounts) the outline they cover
        self._drawn: dict[str, np.ndarray] = {}
        self._outline: dict[str, object] = {}
        self._redrawn: set[str] = set()
        self._sums: dict[str, list] = {}  # per-row fields summed into a territory's (accounts)
        self._of_areas = False  # the layer is the accounts output of a plan of areas
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self.flush)
        self._build()
        QgsProject.instance().layersWillBeRemoved.connect(self._layers_removed)

    # ------------------------------------------------------------------ widgets

    def _build(self) -> None:
        body = QWidget(self)
        box = QVBoxLayout(body)
        setup = QgsCollapsibleGroupBox("Plan", body)
        form = QFormLayout(setup)
        self.layer_combo = QgsMapLayerComboBox(setup)
        self.layer_combo.setFilters(QgsMapLayerProxyModel.VectorLayer)
        self.layer_combo.setAllowEmptyLayer(True)
        self.layer_combo.setLayer(None)
        self.territory_combo = QgsFieldComboBox(setup)
        self.balance_combo = QgsCheckableComboBox(setup)
        self.capacity_combo = QgsMapLayerComboBox(setup)
        self.capacity_combo.setFilters(QgsMapLayerProxyModel.VectorLayer)
        self.capacity_combo.setAllowEmptyLayer(True)
        self.capacity_combo.setLayer(None)
        self.capacity_combo.setToolTip("A layer with territory_id (or rep_id) and capacity, e.g. "
                                       "the centres or summary output; empty: equal targets. "
                                       "A point layer also gives the reps' bases (travel).")  # fmt: skip
        self.tolerance_spin = QDoubleSpinBox(setup)
        self.tolerance_spin.setRange(0.1, 100.0)
        self.tolerance_spin.setValue(5.0)
        self.tolerance_spin.setSuffix(" %")
        self.lock_combo = QgsFieldComboBox(setup)
        self.lock_combo.setAllowEmptyFieldName(True)
        self.current_combo = QgsFieldComboBox(setup)
        self.current_combo.setAllowEmptyFieldName(True)
        self.max_km_spin = QDoubleSpinBox(setup)
        self.max_km_spin.setRange(0.0, 10_000.0)
        self.max_km_spin.setSpecialValueText("no limit")
        self.max_km_spin.setSuffix(" km")
        self.network_widget = QgsFileWidget(setup)
        self.network_widget.setFilter("Road network (*.gpkg *.osm *.pbf *.osm.pbf *.bz2 *.graphml)")
        self.network_widget.setToolTip("The road network of the plan (Build road network): travel "
                                       "in drive minutes from the reps' bases; empty: "
                                       "straight-line km.")  # fmt: skip
        self.max_minutes_spin = QDoubleSpinBox(setup)
        self.max_minutes_spin.setRange(0.0, 1440.0)
        self.max_minutes_spin.setSpecialValueText("no limit")
        self.max_minutes_spin.setSuffix(" min")
        form.addRow("Plan layer", self.layer_combo)
        form.addRow("Territory field", self.territory_combo)
        form.addRow("Balance fields", self.balance_combo)
        form.addRow("Capacities from", self.capacity_combo)
        form.addRow("Tolerance", self.tolerance_spin)
        form.addRow("Lock field", self.lock_combo)
        form.addRow("Current territory", self.current_combo)
        form.addRow("Longest drive", self.max_km_spin)
        form.addRow("Road network", self.network_widget)
        form.addRow("Longest drive time", self.max_minutes_spin)
        self.load_button = QPushButton("Show the plan", setup)
        self.load_button.clicked.connect(self.load)
        form.addRow(self.load_button)
        box.addWidget(setup)
        self.setup_box = setup
        self.plan_label = QLabel("Pick a plan layer and press 'Show the plan'.", body)
        self.plan_label.setWordWrap(True)
        box.addWidget(self.plan_label)
        self.grid = QTableWidget(0, 0, body)
        self.grid.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.grid.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.grid.verticalHeader().setVisible(False)
        box.addWidget(self.grid, 3)
        self.warning_list = QListWidget(body)
        self.warning_list.setMaximumHeight(110)
        self.warning_list.setWordWrap(True)
        box.addWidget(self.warning_list, 1)
        row = QHBoxLayout()
        self.assign_button = QPushButton("Assign selection to", body)
        self.assign_button.clicked.connect(lambda: self.assign_selection())
        self.target_combo = QComboBox(body)
        self.target_combo.currentIndexChanged.connect(self.update_preview)
        row.addWidget(self.assign_button)
        row.addWidget(self.target_combo, 1)
        box.addLayout(row)
        self.preview_label = QLabel("", body)
        self.preview_label.setWordWrap(True)
        box.addWidget(self.preview_label)
        row = QHBoxLayout()
        self.lock_button = QPushButton("Lock selection", body)
        self.lock_button.clicked.connect(lambda: self.lock_selection(True))
        self.unlock_button = QPushButton("Unlock selection", body)
        self.unlock_button.clicked.connect(lambda: self.lock_selection(False))
        row.addWidget(self.lock_button)
        row.addWidget(self.unlock_button)
        box.addLayout(row)
        self.reopt_button = QPushButton("Re-optimise around my edits", body)
        self.reopt_button.setToolTip("Rebalance the plan as edited, keeping the accounts you "
                                     "moved and the locked ones where they are; you approve the "
                                     "proposed moves before they are written.")  # fmt: skip
        self.reopt_button.clicked.connect(lambda: self.reoptimise())
        box.addWidget(self.reopt_button)
        self.proposal_label = QLabel("", body)
        self.proposal_label.setWordWrap(True)
        box.addWidget(self.proposal_label)
        row = QHBoxLayout()
        self.apply_button = QPushButton("Apply the proposed moves", body)
        self.apply_button.clicked.connect(self.apply_proposal)
        self.discard_button = QPushButton("Discard", body)
        self.discard_button.clicked.connect(self.discard_proposal)
        row.addWidget(self.apply_button)
        row.addWidget(self.discard_button)
        box.addLayout(row)
        self.message_label = QLabel("", body)
        self.message_label.setWordWrap(True)
        box.addWidget(self.message_label)
        self.setWidget(body)
        self.layer_combo.layerChanged.connect(self.set_layer)
        self._set_enabled(False)
        self._show_proposal(None)

    def _set_enabled(self, on: bool) -> None:
        for w in (self.assign_button, self.target_combo, self.lock_button, self.unlock_button,
                  self.reopt_button):  # fmt: skip
            w.setEnabled(on)

    def say(self, text: str, level=Qgis.Info) -> None:
        """A message in the panel and on the message bar."""
        self.message_label.setText(text)
        with contextlib.suppress(Exception):
            self.iface.messageBar().pushMessage(TITLE, text, level, 8)

    # ------------------------------------------------------------------ pick a plan

    def set_layer(self, layer) -> None:
        """Pick ``layer`` and pre-fill the fields (from this plugin's names when it has them)."""
        if self.layer_combo.currentLayer() is not layer:
            self.layer_combo.blockSignals(True)
            self.layer_combo.setLayer(layer)
            self.layer_combo.blockSignals(False)
        for combo in (self.territory_combo, self.lock_combo, self.current_combo):
            combo.setLayer(layer)
        self.balance_combo.clear()
        if not isinstance(layer, QgsVectorLayer):
            return
        names = layer.fields().names()
        numeric = [f.name() for f in layer.fields() if f.isNumeric()]
        self.balance_combo.addItems(numeric)
        territory = next((n for n in TERRITORY_NAMES if n in names), names[0] if names else "")
        self.territory_combo.setField(territory)
        self.lock_combo.setField("locked" if "locked" in names else "")
        self.current_combo.setField(next((n for n in CURRENT_NAMES if n in names), ""))
        summary = self._find_capacity_layer(layer)
        self.capacity_combo.setLayer(summary)
        stored = plan_properties(layer)  # the plan's own settings, kept in its saved style
        with contextlib.suppress(ValueError):
            self.tolerance_spin.setValue(float(stored.get("tolerance_pct", "")))
        picked = [f for f in stored.get("balance_fields", "").split(",") if f in numeric]
        if not picked and summary is not None:
            totals = [f[: -len("_total")] for f in summary.fields().names() if f.endswith("_total")]
            picked = [f for f in totals if f in numeric]
        if not picked:
            picked = [f for f in ("revenue_potential", "workload_visits") if f in numeric]
        self.balance_combo.setCheckedItems(picked)
        network = stored.get("network", "")
        self.network_widget.setFilePath(network if network and Path(network).is_file() else "")
        with contextlib.suppress(ValueError):
            self.max_minutes_spin.setValue(float(stored.get("rep_max_minutes", "0") or 0))

    def _drive_minutes(self, xy, crs, centres) -> dict | None:
        """Drive minutes from each rep's base to every row on the chosen road network (None
        without a network, positions or bases)."""
        path = self.network_widget.filePath().strip()
        if not path or xy is None or not centres:
            return None
        if self._network is None or self._network[0] != path:  # read once, not at every reload
            from ..territory_planner_plugin.network import load_network

            self._network = (path, load_network(path))
        return drive_minutes(self._network[1], xy, crs.authid() or crs.toWkt(), centres)

    def _find_capacity_layer(self, layer):
        """A layer of the project with territory ids and capacity: the plan's own (its centres,
        written by the same run) first, then rep bases (points), then any."""
        ranked = []  # (this plan's own first, then points: they give the reps' bases)
        for n, other in enumerate(QgsProject.instance().mapLayers().values()):
            if other is layer or not isinstance(other, QgsVectorLayer):
                continue
            names = other.fields().names()
            if "capacity" not in names or not any(c in names for c in kpis.ID_COLUMNS):
                continue
            same = _same_plan(layer, other)
            if same is False:
                continue  # another plan's centres: its capacities are not this plan's
            points = other.geometryType() == QgsWkbTypes.PointGeometry
            ranked.append((not same, not points, n, other))
        return min(ranked, key=lambda r: r[:3])[3] if ranked else None

    def load(self) -> bool:
        """Read the plan layer and show its table; False (and a message) when it cannot."""
        self.detach()
        layer = self.layer_combo.currentLayer()
        if not isinstance(layer, QgsVectorLayer):
            self.say("Pick a plan layer: a layer with a territory field.", Qgis.Warning)
            return False
        territory = self.territory_combo.currentField()
        if not territory or layer.fields().indexOf(territory) < 0:
            self.say("Pick the territory field of the plan layer.", Qgis.Warning)
            return False
        self._fields = {
            "territory": territory,
            "balance": list(self.balance_combo.checkedItems()),
            "lock": self.lock_combo.currentField() or None,
            "current": self.current_combo.currentField() or None,
        }
        self._outline, self._redrawn = {}, set()
        try:
            self._read(layer)
        except Exception as err:
            self.say(f"The plan could not be read: {err}", Qgis.Critical)
            self.table = None
            return False
        self.layer = layer
        layer.attributeValueChanged.connect(self._attribute_changed)
        layer.featureAdded.connect(self._reload_later)
        layer.featuresDeleted.connect(self._reload_later)
        layer.afterRollBack.connect(self._reload_later)
        layer.afterCommitChanges.connect(self._reload_later)
        layer.editCommandEnded.connect(self.flush)
        layer.updatedFields.connect(self._fields_changed)
        layer.selectionChanged.connect(self.update_preview)
        layer.editingStarted.connect(self._watch_undo)
        self._watch_undo()
        self._set_enabled(True)
        self.setup_box.setCollapsed(True)  # room for the table; the pickers stay one click away
        self.refresh()
        return True

    def _watch_undo(self) -> None:
        """Follow the layer's undo stack (once: a second connection would update twice)."""
        stack = self.layer.undoStack() if self.layer is not None else None
        if stack is None:
            return
        with contextlib.suppress(TypeError, RuntimeError):
            stack.indexChanged.disconnect(self._undo_moved)
        stack.indexChanged.connect(self._undo_moved)

    def _undo_moved(self, _index) -> None:
        self._timer.start()

    def _read(self, layer: QgsVectorLayer) -> None:
        f = self._fields
        names = [f["territory"], *f["balance"]] + [n for n in (f["lock"], f["current"]) if n]
        missing = [n for n in names if layer.fields().indexOf(n) < 0]
        if missing:
            raise ValueError(f"the layer has no field {', '.join(missing)}")
        crs = _metric_crs(layer)
        xform = QgsCoordinateTransform(layer.crs(), crs, QgsProject.instance())
        fids, terr, vals, locks, cur, xy, geoms = [], [], [], [], [], [], []
        tier_at = layer.fields().indexOf("tier")  # coverage models: each tier its own targets
        tiers = {}
        polygons = layer.geometryType() == QgsWkbTypes.PolygonGeometry
        acc_at = layer.fields().indexOf("accounts")  # a plan of units: the accounts of each
        if not polygons or acc_at < 0 or not layer.fields().at(acc_at).isNumeric():
            acc_at = -1
        unit_accounts = []
        import shapely

        for feat in layer.getFeatures(QgsFeatureRequest()):
            fids.append(feat.id())
            terr.append(_plain(feat[f["territory"]]))
            vals.append([_plain(feat[b]) for b in f["balance"]])
            locks.append(_truthy(feat[f["lock"]]) if f["lock"] else False)
            cur.append(_plain(feat[f["current"]]) if f["current"] else None)
            if acc_at >= 0:
                unit_accounts.append(_plain(feat[acc_at]) or 0)
            if tier_at >= 0 and kpis.text_key(terr[-1]) is not None:
                tiers.setdefault(kpis.text_key(terr[-1]), str(_plain(feat[tier_at]) or ""))
            g = feat.geometry()
            if g is None or g.isEmpty():
                xy.append((np.nan, np.nan))
                geoms.append(None)
                continue
            g = type(g)(g)
            g.transform(xform)
            p = g.centroid().asPoint() if polygons else g.pointOnSurface().asPoint()
            xy.append((p.x(), p.y()))
            geoms.append(shapely.from_wkb(bytes(g.asWkb())) if polygons else None)
        xy = np.asarray(xy, float).reshape(-1, 2)
        has_xy = bool(len(xy)) and np.isfinite(xy).all()
        adjacency = None
        # the accounts of a plan of areas: their territories' pieces are the areas' (not counted)
        self._of_areas = not polygons and layer.fields().indexOf(kpis.UNIT_COLUMN) >= 0
        if has_xy and len(xy) and not self._of_areas:
            adjacency = polygon_adjacency(geoms) if polygons else point_adjacency(xy)
        values = pd.DataFrame(vals, columns=f["balance"]).apply(pd.to_numeric, errors="coerce")
        capacity, centres, names_, colours, territories = self._read_capacities(crs)
        self.crs = crs
        # a plan of units with accounts: each unit's accounts add up to its territory's
        self._sums = {"accounts": unit_accounts} if unit_accounts else {}
        # a plan of units is re-optimised as UNITS (whole units, one piece each)
        self.geometries = geoms if polygons and all(g is not None for g in geoms) else None
        self.fids = fids
        self.row_of = {fid: i for i, fid in enumerate(fids)}
        self.loaded_territory = [kpis.text_key(t) for t in terr]
        self.table = PlanTable(
            terr, values=values, balance_fields=f["balance"], capacity=capacity,
            tolerance_pct=self.tolerance_spin.value(), locked=locks,
            current=cur if f["current"] else None, xy=xy if has_xy else None,
            adjacency=adjacency, centres=centres,
            max_km=self.max_km_spin.value() or None, territories=territories, names=names_,
            tiers=tiers if len(set(tiers.values())) > 1 else None,
            minutes=self._drive_minutes(xy if has_xy else None, crs, centres),
            max_minutes=self.max_minutes_spin.value() or None,
        )  # fmt: skip
        own = {}
        if layer.fields().indexOf(palette.COLOUR_FIELD) >= 0:
            idx = layer.fields().indexOf(palette.COLOUR_FIELD)
            for fid, t in zip(fids, self.loaded_territory):
                if t is not None and t not in own:
                    c = layer.getFeature(fid).attribute(idx)
                    if palette.is_colour(c):
                        own[t] = str(c).upper()
        colours.update(own)
        self.colours = palette.plan_colours(self.table.keys, existing=colours)
        self._track_territory_layers(layer)

    def _read_capacities(self, crs):
        """Capacity, rep base, rep name and colour per territory from the capacities layer."""
        source = self.capacity_combo.currentLayer()
        if not isinstance(source, QgsVectorLayer):
            return None, None, None, {}, None
        names = source.fields().names()
        rows = [{n: _plain(feat[n]) for n in names} for feat in source.getFeatures()]
        frame = pd.DataFrame(rows, columns=names)
        table = kpis.read_capacities(frame, where=f"'{source.name()}'")
        capacity = kpis.capacity_map(table)
        centres = None
        if source.geometryType() == QgsWkbTypes.PointGeometry:
            xform = QgsCoordinateTransform(source.crs(), crs, QgsProject.instance())
            centres = {}
            for feat in source.getFeatures():
                key = kpis.text_key(feat[next(c for c in kpis.ID_COLUMNS if c in names)])
                g = feat.geometry()
                if key is not None and g is not None and not g.isEmpty():
                    p = xform.transform(g.asPoint())
                    centres[key] = (p.x(), p.y())
        rep = next((n for n in ("rep_name", "name") if n in names), None)
        names_ = None
        if rep:
            names_ = {k: str(v) for k, v in zip(table.index, frame[rep]) if v is not None}
        colours = {}
        if palette.COLOUR_FIELD in names:
            colours = {k: str(c).upper() for k, c in zip(table.index, frame[palette.COLOUR_FIELD])
                       if palette.is_colour(c)}  # fmt: skip
        return capacity, centres, names_, colours, list(table.index)

    def detach(self) -> None:
        """Stop following the layer (before another is loaded, or when it goes away)."""
        if self.task is not None:
            self.task.cancel()
        if self.layer is None:
            return
        layer = self.layer
        self.layer = None
        for signal, slot in (
            (layer.attributeValueChanged, self._attribute_changed),
            (layer.featureAdded, self._reload_later),
            (layer.featuresDeleted, self._reload_later),
            (layer.afterRollBack, self._reload_later),
            (layer.afterCommitChanges, self._reload_later),
            (layer.editCommandEnded, self.flush),
            (layer.updatedFields, self._fields_changed),
            (layer.selectionChanged, self.update_preview),
            (layer.editingStarted, self._watch_undo),
        ):
            with contextlib.suppress(TypeError, RuntimeError):
                signal.disconnect(slot)
        with contextlib.suppress(TypeError, RuntimeError, AttributeError):
            layer.undoStack().indexChanged.disconnect(self._undo_moved)

    def reset(self, text: str) -> None:
        """Empty the panel (the plan is gone) and say why."""
        self.detach()
        self.table = None
        self.grid.setRowCount(0)
        self.grid.setColumnCount(0)
        self.warning_list.clear()
        self.target_combo.clear()
        self.preview_label.setText("")
        self._show_proposal(None)
        self._set_enabled(False)
        self.setup_box.setCollapsed(False)
        self.plan_label.setText(text)

    def _layers_removed(self, ids) -> None:
        if self.layer is not None and self.layer.id() in ids:
            self.reset("The plan layer was removed from the project; pick another plan.")
            self.set_layer(None)

    def _fields_changed(self) -> None:
        if self.layer is None:
            return
        f = self._fields
        wanted = [f["territory"], *f["balance"]] + [n for n in (f["lock"], f["current"]) if n]
        gone = [n for n in wanted if self.layer.fields().indexOf(n) < 0]
        if gone:
            layer = self.layer
            self.reset(f"The field(s) {', '.join(gone)} are no longer in '{layer.name()}' "
                       "(renamed or deleted): pick the fields again and press 'Show the plan'.")  # fmt: skip
            self.set_layer(layer)
            self.say(self.plan_label.text(), Qgis.Warning)

    # ------------------------------------------------------------------ follow edits

    def _attribute_changed(self, fid, index, value) -> None:
        if self.layer is None or self.table is None:
            return
        name = self.layer.fields().at(index).name() if index >= 0 else ""
        row = self.row_of.get(fid)
        if row is None:
            self._reload_needed = True
        elif name == self._fields["territory"]:
            self._pending[row] = _plain(value)
        elif name == self._fields["lock"]:
            self._locks[row] = _truthy(value)
        elif name in self._fields["balance"]:
            m = self._fields["balance"].index(name)
            try:
                self.table.values[row, m] = float(_plain(value) or 0.0)
            except (TypeError, ValueError):
                self.table.values[row, m] = 0.0
            self._reload_needed = "values"
        else:
            return
        self._timer.start()

    def _reload_later(self, *_args) -> None:
        self._reload_needed = True
        self._timer.start()

    def flush(self) -> None:
        """Apply the edits seen since the last update to the live table and show it."""
        if self.table is None or self.layer is None:
            return
        if self._reload_needed is True:
            self._reload_needed = False
            self._pending.clear()
            self._locks.clear()
            try:
                self._read(self.layer)
            except Exception as err:
                self.reset(f"The plan could not be read again: {err}")
                return
        else:
            if self._pending:
                rows = list(self._pending)
                self.table.set_territories(rows, [self._pending[r] for r in rows])
                self._pending.clear()
            for locked in (True, False):
                rows = [r for r, v in self._locks.items() if v is locked]
                if rows:
                    self.table.set_locked(rows, locked)
            self._locks.clear()
            if self._reload_needed == "values":
                self._reload_needed = False
                self.table.recompute()
        self.refresh()

    # ------------------------------------------------------------------ show

    def refresh(self) -> None:
        """Fill the table, the plan figures and the warnings from the engine."""
        t = self.table
        if t is None:
            return
        frame = t.table()
        plan = t.plan()
        shown = t.shown()
        frame = frame[shown].reset_index(drop=True)
        drive = "travel_min" in frame and np.isfinite(frame["travel_min"]).any()
        travel = t.centres and np.isfinite(frame["travel_km"]).any()
        names = bool(t.names)  # a Rep column only when the plan names its reps
        headers = ["", "Territory", *(["Rep"] if names else []), "Count"]
        for m in t.measures:
            text = kpis.label(m)
            headers += [text.replace(" ", "\n", 1) if len(text) > 12 else text, "vs\ntarget"]
        headers += ["Drive min" if drive else "Travel km" if travel else "Compactness km",
                    "Pieces", "Moved"]  # fmt: skip
        self.grid.setColumnCount(len(headers))
        self.grid.setHorizontalHeaderLabels(headers)
        self.grid.setRowCount(len(frame))
        for i, rec in frame.iterrows():
            key = rec["territory"]
            swatch = QTableWidgetItem("")
            swatch.setBackground(QBrush(QColor(self.colours.get(key, "#999999"))))
            cells = [swatch, QTableWidgetItem(key)]
            if names:
                cells.append(QTableWidgetItem(str(rec["rep"])))
            cells.append(QTableWidgetItem(f"{int(rec['count']):,}"))
            for m in t.measures:
                cells.append(QTableWidgetItem(f"{rec[f'{m}_total']:,.0f}"))
                dev = QTableWidgetItem(f"{rec[f'{m}_dev_pct']:+.1f}%")
                dev.setBackground(QBrush(QColor(STATUS_COLOURS[rec[f"{m}_status"]])))
                dev.setToolTip(f"Target {rec[f'{m}_target']:,.1f}; {rec[f'{m}_status']} the "
                               f"±{t.tolerance_pct:g}% band")  # fmt: skip
                cells.append(dev)
            figure = (rec["travel_min"] if drive else
                      rec["travel_km"] if travel else rec["compactness_km"])  # fmt: skip
            cells.append(QTableWidgetItem("" if not np.isfinite(figure) else f"{figure:,.1f}"))
            pieces = QTableWidgetItem(str(int(rec["pieces"])))
            if rec["pieces"] > 1:
                pieces.setBackground(QBrush(QColor(STATUS_COLOURS[OUTSIDE])))
            cells += [pieces, QTableWidgetItem(str(int(rec["moved"])))]
            for j, item in enumerate(cells):
                self.grid.setItem(i, j, item)
        self.grid.resizeColumnsToContents()
        self.grid.setColumnWidth(0, 14)
        cvs = ", ".join(f"CV {kpis.label(m).lower()} {plan.cv[m]:.3f}" for m in t.measures)
        parts = [cvs, f"largest deviation {plan.max_deviation_pct:.1f}%",
                 f"{plan.outside} territor{'y' if plan.outside == 1 else 'ies'} outside "
                 f"±{t.tolerance_pct:g}%"]  # fmt: skip
        if t.current is not None:
            parts.append(f"{plan.moved:,} moved")
        if plan.unassigned:
            parts.append(f"{plan.unassigned:,} unassigned")
        self.plan_label.setText("Plan: " + "; ".join(parts) + ".")
        self.warning_list.clear()
        if self._of_areas:
            self.warning_list.addItem(
                f"⚠ These are the accounts of a plan of areas ({kpis.UNIT_COLUMN}): an account "
                "moved alone leaves its area split between territories, and pieces are not "
                "counted here. Edit the plan's areas (its Units with territory layer) to move "
                "whole areas and see the pieces."
            )
        for w in plan.warnings:
            self.warning_list.addItem("⚠ " + w.text)
        stale = self._redraw_territory_layers()
        if stale:
            names = ", ".join(f"'{layer.name()}'" for layer in stale)
            why, redraw = (
                ("its areas", "Edit the plan's areas layer to have them redrawn.") if self._of_areas
                else ("the layer cannot be edited", "Dissolve the edited layer by territory_id "
                      "to redraw them.") if self.layer.geometryType() == QgsWkbTypes.PolygonGeometry
                else ("the layer cannot be edited", "Territory report on the edited layer maps the "
                      "plan as edited.")
            )  # fmt: skip
            self.warning_list.addItem(
                f"⚠ {names} on the map still show{'s' if len(stale) == 1 else ''} the plan as "
                f"loaded (outlines and totals; {why}); this table is the plan as edited. {redraw}"
            )
        redrawn = [QgsProject.instance().mapLayer(i) for i in sorted(self._redrawn)]
        redrawn = [layer for layer in redrawn if layer is not None and layer.isModified()]
        if redrawn:
            names = ", ".join(f"'{layer.name()}'" for layer in redrawn)
            self.warning_list.addItem(
                f"ℹ {names} follow{'s' if len(redrawn) == 1 else ''} the edits (outlines, "
                "counts, totals and pieces redrawn); save it with the plan layer to keep them."
            )
        current = self.target_combo.currentText()
        self.target_combo.blockSignals(True)
        self.target_combo.clear()
        self.target_combo.addItems(list(frame["territory"]))
        if current:
            self.target_combo.setCurrentText(current)
        self.target_combo.blockSignals(False)
        self.update_preview()
        self.updated.emit()

    @staticmethod
    def _count_field(layer: QgsVectorLayer | None) -> str:
        """What a Territories output counts per territory: ``units`` for a plan of areas."""
        polygons = layer is not None and layer.geometryType() == QgsWkbTypes.PolygonGeometry
        return "units" if polygons else "accounts"

    def _territory_layers(self, layer: QgsVectorLayer) -> list:
        """The project's territory polygons (a Design/Rebalance territories output: polygons
        with territory_id, pieces and totals) sharing territory ids with this plan."""
        keys = set(self.table.keys) if self.table is not None else set()
        out = []
        for other in QgsProject.instance().mapLayers().values():
            if other is layer or not isinstance(other, QgsVectorLayer):
                continue
            if other.geometryType() != QgsWkbTypes.PolygonGeometry:
                continue
            names = set(other.fields().names())
            if not {"territory_id", "pieces"} <= names or not any(n.endswith("_total")
                                                                 for n in names):  # fmt: skip
                continue
            ids = {str(v) for v in other.uniqueValues(other.fields().indexOf("territory_id"))}
            if ids & keys:
                out.append(other)
        return out

    def _track_territory_layers(self, layer: QgsVectorLayer) -> None:
        """Follow the Territories layers that show this plan as just read (their counts, or
        totals, are the plan's): the panel redraws them as the plan is edited. Territories
        of another plan with the same ids (e.g. Design's, when a rebalanced plan is edited)
        are left alone."""
        drawn, outline = {}, {}
        count_field = self._count_field(layer)
        for other in self._territory_layers(layer):
            if _same_plan(layer, other) is False:
                continue
            names = [n for n in other.fields().names()
                     if n == count_field or n.endswith("_total")]  # fmt: skip
            figures = {}
            for feat in other.getFeatures():
                key = kpis.text_key(_plain(feat["territory_id"]))
                if key is not None:
                    figures[key] = {n: _plain(feat[n]) for n in names}
            if not self.table.shows_loaded(figures, count_field):
                continue
            drawn[other.id()] = self.table.codes.copy()
            # (the accounts of a plan of areas do not draw its territories: its areas do)
            if layer.geometryType() != QgsWkbTypes.PolygonGeometry and not self._of_areas:
                outline[other.id()] = self._outline.get(other.id()) or self._outline_of(other)
        self._drawn, self._outline = drawn, outline

    def _outline_of(self, layer: QgsVectorLayer):
        """The area a plan of accounts' territory polygons cover (their union), in the
        panel's metric CRS: redrawn territories stay within it."""
        import shapely

        xform = QgsCoordinateTransform(layer.crs(), self.crs, QgsProject.instance())
        parts = []
        for feat in layer.getFeatures():
            g = feat.geometry()
            if g is not None and not g.isEmpty():
                g = type(g)(g)
                g.transform(xform)
                parts.append(shapely.from_wkb(bytes(g.asWkb())))
        return shapely.union_all(shapely.make_valid(parts)) if parts else None

    def _redraw_territory_layers(self) -> list:
        """Redraw, through their edit buffers, the followed Territories layers whose
        territories the edits changed (outline, count, totals, deviations, pieces, travel);
        returns those that cannot be edited, which still show the plan as loaded."""
        stale = []
        for lid, drawn in list(self._drawn.items()):
            layer = QgsProject.instance().mapLayer(lid)
            if not isinstance(layer, QgsVectorLayer):
                del self._drawn[lid]
                continue
            keys = [k for k in self.table.changed_territories(drawn)
                    if k in self.table.index]  # fmt: skip
            if not keys:
                continue
            caps = layer.dataProvider().capabilities()
            writable = not layer.readOnly() and bool(
                caps & QgsVectorDataProvider.ChangeGeometries
                and caps & QgsVectorDataProvider.ChangeAttributeValues
            )
            if not writable or (self.geometries is None and self._outline.get(lid) is None):
                stale.append(layer)
                continue
            # accounts: every outline again (the cells of one plan, as Design draws them, so
            # that no two overlap); units: the changed territories' dissolved units
            drawn_keys = keys if self.geometries is not None else list(self.table.keys)
            try:
                shapes = territory_outlines(self.table, drawn_keys, geometries=self.geometries,
                                            outline=self._outline.get(lid))  # fmt: skip
                self._write_territories(layer, shapes, set(keys))
            except Exception as err:  # the table stays right; say the map is not
                QgsApplication.messageLog().logMessage(
                    f"Redrawing '{layer.name()}' failed: {err}", LOG_TAG, Qgis.Warning)  # fmt: skip
                stale.append(layer)
                continue
            self._drawn[lid] = self.table.codes.copy()
            self._redrawn.add(lid)
        return stale

    def _write_territories(self, layer: QgsVectorLayer, shapes: dict, changed: set) -> None:
        """Write the territories' new polygons (``shapes``) and the figures of the ``changed``
        ones into ``layer``'s edit buffer (one undoable command)."""
        import shapely

        xform = QgsCoordinateTransform(self.crs, layer.crs(), QgsProject.instance())
        multi = QgsWkbTypes.isMultiType(layer.wkbType())
        index = {f.name(): i for i, f in enumerate(layer.fields())}
        count_field = self._count_field(self.layer)
        if not layer.isEditable():
            layer.startEditing()
        layer.beginEditCommand("Territory editor: redraw territories")
        for feat in layer.getFeatures():
            key = kpis.text_key(_plain(feat["territory_id"]))
            if key not in shapes:
                continue
            shape = shapes[key]
            g = QgsGeometry()
            if not shape.is_empty:
                g.fromWkb(shapely.to_wkb(shape))
                g.transform(xform)
                if multi:
                    g.convertToMultiType()
                elif g.isMultipart() and not g.convertToSingleType():
                    g = feat.geometry()  # a single-part layer cannot hold a split territory
            layer.changeGeometry(feat.id(), g)
            if key not in changed:
                continue
            fields = self.table.output_fields(key, count_field, sums=self._sums)
            for name, value in fields.items():
                if name in index:
                    layer.changeAttributeValue(feat.id(), index[name], value)
        layer.endEditCommand()
        layer.triggerRepaint()

    def figures(self) -> pd.DataFrame:
        """The table as shown (rows in order, the engine's numbers), for tests and exports."""
        t = self.table
        return t.table()[t.shown()].reset_index(drop=True) if t is not None else pd.DataFrame()

    def selected_rows(self) -> list[int]:
        if self.layer is None:
            return []
        return [self.row_of[f] for f in self.layer.selectedFeatureIds() if f in self.row_of]

    def update_preview(self, *_args) -> None:
        """Show what assigning the selection to the picked territory would do."""
        rows = self.selected_rows()
        target = self.target_combo.currentText()
        if self.table is None or not rows or not target:
            self.preview_label.setText("Select accounts or units on the map to assign them."
                                       if self.table is not None else "")  # fmt: skip
            return
        deltas = self.table.preview(rows, target)
        m = self.table.measures[0]
        parts = [
            f"{d.territory}: {d.count_before}→{d.count_after}, {kpis.label(m).lower()} "
            f"{d.dev_before[m]:+.1f}%→{d.dev_after[m]:+.1f}%"
            + (f", {d.pieces_after} pieces" if (d.pieces_after or 0) > 1 else "")
            for d in deltas.values()
        ]
        plan = self.table.last_preview_plan
        self.preview_label.setText(
            f"Preview ({len(rows)} selected → {target}): " + "; ".join(parts)
            + f". Largest deviation after: {plan.max_deviation_pct:.1f}%."
        )  # fmt: skip

    # ------------------------------------------------------------------ write

    def _editable(self) -> bool:
        """Start editing when needed; False with a message when the layer cannot be edited."""
        layer = self.layer
        if layer is None:
            return False
        if layer.isEditable():
            return True
        caps = layer.dataProvider().capabilities()
        if layer.readOnly() or not caps & QgsVectorDataProvider.ChangeAttributeValues:
            self.say(f"'{layer.name()}' is read-only: nothing was changed. Save it as a "
                     "GeoPackage (Export > Save Features As) and edit the copy.",
                     Qgis.Warning)  # fmt: skip
            return False
        if not layer.startEditing():
            self.say(f"'{layer.name()}' cannot be edited now: nothing was changed.", Qgis.Warning)
            return False
        return True

    def _value_for(self, field: str, key):
        """``key`` in the field's type (an integer field gets an integer)."""
        fld = self.layer.fields().field(field)
        if key is None:
            return None
        if fld.type() in (QVariant.Int, QVariant.LongLong, QVariant.UInt, QVariant.ULongLong):
            try:
                return int(key)
            except ValueError:
                return key
        if fld.type() == QVariant.Double:
            try:
                return float(key)
            except ValueError:
                return key
        return str(key)

    def _write(self, text: str, changes: dict[int, dict[str, object]]) -> bool:
        """Write ``{row: {field: value}}`` as one undoable edit command."""
        if not changes or not self._editable():
            return False
        layer = self.layer
        layer.beginEditCommand(text)
        ok = True
        for row, values in changes.items():
            for name, value in values.items():
                idx = layer.fields().indexOf(name)
                ok &= layer.changeAttributeValue(self.fids[row], idx, value)
        if not ok:
            layer.destroyEditCommand()
            self.say(f"'{layer.name()}' refused the change: nothing was changed.", Qgis.Warning)
            self.flush()
            return False
        layer.endEditCommand()
        self.flush()
        return True

    def assign_selection(self, territory=None) -> bool:
        """Assign the selected features to ``territory`` (default: the picked one)."""
        territory = territory if territory is not None else self.target_combo.currentText()
        rows = self.selected_rows()
        if not rows:
            self.say("Select accounts or units on the map first.", Qgis.Warning)
            return False
        field = self._fields["territory"]
        value = self._value_for(field, territory)
        return self._write(f"Assign {len(rows)} to territory {territory}",
                           {r: {field: value} for r in rows})  # fmt: skip

    def lock_selection(self, locked: bool = True) -> bool:
        """Lock (or unlock) the selected features in their territory, through the lock field."""
        rows = self.selected_rows()
        field = self._fields.get("lock")
        if not field:
            self.say("Pick a lock field (e.g. 'locked') and press 'Show the plan' to lock.",
                     Qgis.Warning)  # fmt: skip
            return False
        if not rows:
            self.say("Select accounts or units on the map first.", Qgis.Warning)
            return False
        fld = self.layer.fields().field(field)
        changes = {}
        for r in rows:
            if fld.type() == QVariant.Bool:
                value = bool(locked)
            elif fld.isNumeric():
                value = 1 if locked else 0
            else:  # a text lock field names the territory, as the algorithms read it
                value = self.table.territory_of(r) if locked else None
            changes[r] = {field: value}
        return self._write(f"{'Lock' if locked else 'Unlock'} {len(rows)}", changes)

    # ------------------------------------------------------------------ re-optimise

    def manual_rows(self) -> list[int]:
        """Rows whose territory differs from the plan as loaded (moved by hand)."""
        now = self.table.assignment()
        return [i for i, (a, b) in enumerate(zip(now, self.loaded_territory)) if a != b]

    def reoptimise(self, *, wait: bool = False) -> None:
        """Rebalance around the manual edits as a background task; ``wait`` runs it here."""
        if self.table is None:
            return
        table, manual, crs = self.table, self.manual_rows(), self.crs.toWkt()
        geometries = getattr(self, "geometries", None)

        def work(task):
            def progress(fraction, _text=""):
                task.setProgress(100.0 * fraction)

            # a dict: QgsTaskWrapper tests the returned value's truth (a DataFrame has none)
            moves = reoptimise(table, manual_rows=manual, crs=crs, geometries=geometries,
                               progress=progress, is_cancelled=task.isCanceled)  # fmt: skip
            return {"moves": moves}

        def done(exception, result=None):
            self.task = None
            self.reopt_button.setEnabled(True)
            if exception is not None and "cancel" in str(exception).lower():
                self.say("Re-optimising was cancelled: nothing was changed.")
                return
            if exception is not None or result is None:
                self.say(f"Re-optimising failed, nothing was changed: {exception}", Qgis.Warning)
                return
            self._show_proposal(result["moves"])

        self.reopt_button.setEnabled(False)
        self.say("Re-optimising around your edits…")
        if wait:

            class _Here:
                def setProgress(self, _value):
                    pass

                def isCanceled(self):
                    return False

            try:
                result = work(_Here())
            except Exception as err:
                done(err)
            else:
                done(None, result)
            return
        self.task = QgsTask.fromFunction("Territory editor: re-optimise", work, on_finished=done,
                                         flags=QgsTask.CanCancel)  # fmt: skip
        QgsApplication.taskManager().addTask(self.task)

    def _show_proposal(self, moves: pd.DataFrame | None) -> None:
        self.proposal = moves
        has = moves is not None and len(moves) > 0
        self.apply_button.setVisible(has)
        self.discard_button.setVisible(has)
        if moves is None:
            self.proposal_label.setText("")
            return
        if not has:
            self.proposal_label.setText("Re-optimising proposes no moves: the plan is as "
                                        "balanced as it gets around your edits.")  # fmt: skip
            self.proposal_ready.emit()
            return
        before = self.table.assignment()
        rows = moves["row"].tolist()
        self.table.set_territories(rows, moves["to_id"].tolist())
        after = self.table.plan()
        self.table.set_territories(rows, [before[r] for r in rows])
        flows = moves.groupby(["from_id", "to_id"], dropna=False).size()
        listed = ", ".join(f"{n} {a}→{b}" for (a, b), n in flows.head(8).items())
        self.proposal_label.setText(
            f"Proposed: {len(moves)} move(s) ({listed}{'…' if len(flows) > 8 else ''}); "
            f"largest deviation {after.max_deviation_pct:.1f}%, {after.outside} territories "
            "outside the band. Apply them?"
        )  # fmt: skip
        self.message_label.setText("")
        self.proposal_ready.emit()

    def apply_proposal(self) -> bool:
        """Write the proposed moves through the edit buffer (one undoable command)."""
        moves = self.proposal
        if moves is None or self.layer is None or not len(moves):
            return False
        field = self._fields["territory"]
        changes = {int(r): {field: self._value_for(field, t)}
                   for r, t in zip(moves["row"], moves["to_id"])}  # fmt: skip
        ok = self._write(f"Re-optimise: {len(changes)} moves", changes)
        if ok:
            self._show_proposal(None)
        return ok

    def discard_proposal(self) -> None:
        self._show_proposal(None)
