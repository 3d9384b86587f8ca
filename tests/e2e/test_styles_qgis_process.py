"""A plan made with qgis_process opens styled later, in the plan's own colours; a rebalance of it
keeps those colours."""

from __future__ import annotations

from pathlib import Path

ACCOUNTS = "{accounts}|layername=accounts"
KINDS = ("accounts", "territories", "centres")


def _open_styled(path: Path) -> tuple[dict, dict]:
    """(category colours of the layer's own style, colours stored in its colour field)."""
    from qgis.core import QgsProject, QgsVectorLayer

    project = QgsProject()  # a fresh project: nothing but what the file carries
    layer = QgsVectorLayer(str(path), path.stem, "ogr")
    assert layer.isValid(), path
    project.addMapLayer(layer)
    renderer = layer.renderer()
    assert renderer.type() == "categorizedSymbol", f"{path.name} opens unstyled"
    assert renderer.classAttribute() == "territory_id"
    shown = {str(c.value()): c.symbol().color().name().upper() for c in renderer.categories()}
    stored = {str(f["territory_id"]): str(f["colour"]) for f in layer.getFeatures()}
    project.removeAllMapLayers()
    return shown, stored


def test_qgis_process_plan_opens_styled_and_rebalance_keeps_colours(qgis_app, qp, e2e_data,
                                                                     tmp_path):  # fmt: skip
    accounts = ACCOUNTS.format(**e2e_data)
    design = {k: tmp_path / f"design_{k}.gpkg" for k in KINDS}
    qp.run_json("designterritories", {
        "ACCOUNTS": accounts, "ID_FIELD": "id", "TERRITORIES": 5,
        "BALANCE_FIELDS": ["revenue_potential"], "TOLERANCE": 10, "TIME_LIMIT": 20,
        **{f"OUTPUT_{k.upper()}": v for k, v in design.items()},
    })  # fmt: skip
    colours = None
    for kind, path in design.items():
        assert path.with_suffix(".qml").is_file(), f"no .qml beside {path.name}"
        shown, stored = _open_styled(path)
        assert shown == stored, f"{kind}: QGIS shows other colours than the plan stores"
        colours = colours or stored
        assert stored == colours, f"{kind} colours differ from the accounts'"
    assert len(set(colours.values())) == 5

    rebalanced = {k: tmp_path / f"rb_{k}.gpkg" for k in KINDS}
    qp.run_json("rebalanceterritories", {
        "ACCOUNTS": str(design["accounts"]), "ID_FIELD": "id", "CURRENT_FIELD": "territory_id",
        "BALANCE_FIELDS": ["revenue_potential"], "TOLERANCE": 5, "TIME_LIMIT": 20,
        "OUTPUT_MOVES": tmp_path / "rb_moves.gpkg",
        **{f"OUTPUT_{k.upper()}": v for k, v in rebalanced.items()},
    })  # fmt: skip
    for kind, path in rebalanced.items():
        shown, stored = _open_styled(path)
        assert shown == stored == colours, f"rebalanced {kind}: colours changed"
