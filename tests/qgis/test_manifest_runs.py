"""designterritories with OUTPUT_MANIFEST and MANIFEST: record a run, reproduce it, catch changes."""

from __future__ import annotations

import json

import pytest

BASE = {
    "ID_FIELD": "id",
    "TERRITORIES": 3,
    "BALANCE_FIELDS": ["revenue_potential", "workload_visits"],
    "TOLERANCE": 10,
    "SEED": 1,
    "TIME_LIMIT": 20,
    "SOLVER": 0,
}


def _params(accounts_gpkg, out, **extra):
    params = {"ACCOUNTS": f"{accounts_gpkg}|layername=accounts", **BASE, **extra}
    out.mkdir(exist_ok=True)
    for key in ("OUTPUT_ACCOUNTS", "OUTPUT_TERRITORIES"):
        params.setdefault(key, str(out / f"{key.lower()}.gpkg"))
    return params


@pytest.fixture
def recorded(run_alg, accounts_gpkg, tmp_path):
    """A first run with OUTPUT_MANIFEST: (its results, the manifest path)."""
    path = tmp_path / "first" / "run.json"
    result = run_alg(
        "designterritories", _params(accounts_gpkg, tmp_path / "first", OUTPUT_MANIFEST=str(path))
    )
    return result, path


def test_manifest_records_the_run(recorded, accounts_gpkg, tp):
    result, path = recorded
    assert result["OUTPUT_MANIFEST"] == str(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    for key in ("manifest_version", "algorithm", "created", "plugin_version", "versions", "seed",
                "solver", "parameters", "outputs", "input_hashes", "results", "assignment_hash",
                "engine_parameters"):  # fmt: skip
        assert key in data, key
    assert data["algorithm"] == "territory_planner:designterritories"
    assert data["seed"] == 1
    assert data["solver"] == "CBC"
    assert data["versions"]["qgis"].startswith("3.")
    assert data["versions"]["pulp"]
    params = data["parameters"]
    assert params["ACCOUNTS"] == f"{accounts_gpkg}|layername=accounts"
    assert params["BALANCE_FIELDS"] == ["revenue_potential", "workload_visits"]
    assert params["TERRITORIES"] == 3
    assert params["TOLERANCE"] == 10
    assert params["SOLVER"] == 0
    assert params["REPS"] is None
    assert params["MAX_MOVES"] is None
    assert "MANIFEST" not in params
    assert data["outputs"]["OUTPUT_MANIFEST"] == str(path)
    assert data["outputs"]["OUTPUT_ACCOUNTS"] == result["OUTPUT_ACCOUNTS"]
    assert set(data["input_hashes"]) == {"ACCOUNTS", "REPS", "NETWORK"}
    assert len(data["input_hashes"]["ACCOUNTS"]) == 64
    assert data["input_hashes"]["REPS"] is None
    assert data["results"]["objective"] == pytest.approx(result["OBJECTIVE"])
    assert data["results"]["lower_bound"] == pytest.approx(result["LOWER_BOUND"])
    assert data["results"]["gap_pct"] == pytest.approx(result["GAP_PCT"])
    assert "max_deviation_pct" in data["results"]["kpis"]
    assert len(data["assignment_hash"]) == 64
    assert [p.name for p in path.parent.iterdir() if p.suffix == ".tmp"] == []


def test_no_manifest_unless_asked(run_alg, accounts_gpkg, tmp_path):
    result = run_alg("designterritories", _params(accounts_gpkg, tmp_path / "out"))
    assert result["OUTPUT_MANIFEST"] is None
    assert not list(tmp_path.rglob("*.json"))


def test_rerun_with_manifest_reproduces(recorded, run_alg, accounts_gpkg, tmp_path, feedback):
    _, path = recorded
    second = tmp_path / "second" / "run.json"
    params = _params(
        accounts_gpkg, tmp_path / "second", MANIFEST=str(path), OUTPUT_MANIFEST=str(second)
    )
    run_alg("designterritories", params, feedback)

    assert "Reproduced exactly" in feedback.text()
    assert not [w for w in feedback.warnings if "MANIFEST" in w]
    old = json.loads(path.read_text(encoding="utf-8"))
    new = json.loads(second.read_text(encoding="utf-8"))
    assert new["assignment_hash"] == old["assignment_hash"]
    assert new["input_hashes"] == old["input_hashes"]
    assert new["parameters"] == old["parameters"]
    assert new["results"]["objective"] == old["results"]["objective"]
    assert new["reproduces"] == str(path)


def test_rerun_warns_about_changed_parameters(recorded, run_alg, accounts_gpkg, tmp_path, feedback):
    """QUOTA_TOTAL only splits a quota in the summary: the plan is the same, with a warning."""
    _, path = recorded
    params = _params(accounts_gpkg, tmp_path / "quota", MANIFEST=str(path), QUOTA_TOTAL=1000)
    run_alg("designterritories", params, feedback)
    assert any("QUOTA_TOTAL" in w and "manifest" in w for w in feedback.warnings)
    assert "Reproduced exactly" in feedback.text()


def _change_one_revenue(gpkg) -> None:
    """Add 1 to the first account's revenue_potential in the GeoPackage copy."""
    from qgis.core import QgsVectorLayer

    layer = QgsVectorLayer(f"{gpkg}|layername=accounts", "accounts", "ogr")
    assert layer.isValid()
    feature = next(layer.getFeatures())
    index = layer.fields().indexOf("revenue_potential")
    assert layer.startEditing()
    assert layer.changeAttributeValue(feature.id(), index, feature[index] + 1)
    assert layer.commitChanges(), layer.commitErrors()
    del layer


def test_changed_input_is_named(recorded, run_alg, accounts_gpkg, tmp_path):
    from qgis.core import QgsProcessingException

    _, path = recorded
    _change_one_revenue(accounts_gpkg)
    out = tmp_path / "changed"
    params = _params(accounts_gpkg, out, MANIFEST=str(path))
    with pytest.raises(QgsProcessingException, match="ACCOUNTS") as err:
        run_alg("designterritories", params)
    assert "Use the same layers or run without MANIFEST" in str(err.value)
    assert not (out / "output_accounts.gpkg").exists()  # stopped before solving


def test_plan_that_differs_is_an_error(recorded, run_alg, accounts_gpkg, tmp_path):
    from qgis.core import QgsProcessingException

    _, path = recorded
    data = json.loads(path.read_text(encoding="utf-8"))
    data["assignment_hash"] = "0" * 64
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(QgsProcessingException, match="Plan differs from the manifest"):
        run_alg("designterritories", _params(accounts_gpkg, tmp_path / "t", MANIFEST=str(tampered)))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"manifest_version": 1, "algorithm": "territory_planner:checkaccounts", '
         '"parameters": {}, "input_hashes": {}, "assignment_hash": "x"}', "checkaccounts"),
    ],
)  # fmt: skip
def test_unusable_manifest_is_explained(run_alg, accounts_gpkg, tmp_path, content, message):
    from qgis.core import QgsProcessingException

    bad = tmp_path / "bad.json"
    bad.write_text(content, encoding="utf-8")
    with pytest.raises(QgsProcessingException, match=message):
        run_alg("designterritories", _params(accounts_gpkg, tmp_path / "b", MANIFEST=str(bad)))


def test_layer_objects_are_recorded_as_sources(run_alg, accounts_gpkg, tmp_path, feedback):
    """In QGIS the inputs are layers or feature-source definitions: the manifest keeps paths."""
    from qgis.core import QgsProcessingFeatureSourceDefinition, QgsProject, QgsVectorLayer

    source = f"{accounts_gpkg}|layername=accounts"
    layer = QgsVectorLayer(source, "accounts", "ogr")
    assert layer.isValid()
    by_layer, by_definition = tmp_path / "layer.json", tmp_path / "definition.json"
    run_alg(
        "designterritories",
        _params(accounts_gpkg, tmp_path / "l", ACCOUNTS=layer, OUTPUT_MANIFEST=str(by_layer)),
    )
    layer.selectAll()
    QgsProject.instance().addMapLayer(layer, False)
    try:
        selected = QgsProcessingFeatureSourceDefinition(layer.id(), True)  # by layer id
        params = _params(
            accounts_gpkg, tmp_path / "d", ACCOUNTS=selected, OUTPUT_MANIFEST=str(by_definition)
        )
        run_alg("designterritories", params, feedback)
    finally:
        QgsProject.instance().removeMapLayer(layer.id())
    first = json.loads(by_layer.read_text(encoding="utf-8"))
    second = json.loads(by_definition.read_text(encoding="utf-8"))
    assert first["parameters"]["ACCOUNTS"] == source
    assert second["parameters"]["ACCOUNTS"] == source
    assert any("selected features only" in w for w in feedback.warnings)
    assert second["input_hashes"] == first["input_hashes"]  # every feature was selected
    assert second["assignment_hash"] == first["assignment_hash"]
