"""Run manifests: stable hashes, atomic writes, clear read errors, input and parameter checks."""

from __future__ import annotations

import json
import os

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from territory_planner_plugin import __version__, manifest
from territory_planner_plugin.errors import InvalidInputError


def accounts(**changes) -> gpd.GeoDataFrame:
    frame = gpd.GeoDataFrame(
        {
            "id": ["A1", "A2", "A3"],
            "revenue": [100.0, np.nan, 250.5],
            "visits": np.array([4, 6, 2], dtype="int64"),
            "key": [True, False, False],
            "locked_to": pd.Series([None, "T1", None], dtype="object"),
        },
        geometry=[shapely.Point(385000, 6672000), shapely.Point(386000, 6673000), None],
        crs="EPSG:3067",
    )
    for column, (row, value) in changes.items():
        frame.loc[row, column] = value
    return frame


def figures(**extra) -> dict:
    return {
        "objective": 12.5,
        "lower_bound": 11.0,
        "gap_pct": 12.0,
        "max_deviation_pct": 3.2,
        "moved": np.int64(4),
        "kpis": {"cv_revenue": np.float64(0.05), "cv_travel": float("nan")},
        "assignment_hash": "abc",
        **extra,
    }


# ---------------------------------------------------------------------------- frame_hash
def test_same_frame_same_hash():
    assert manifest.frame_hash(accounts()) == manifest.frame_hash(accounts())
    assert len(manifest.frame_hash(accounts())) == 64


def test_hash_ignores_column_order_and_index():
    frame = accounts()
    shuffled = frame[["visits", "geometry", "id", "locked_to", "key", "revenue"]]
    reindexed = frame.set_axis([10, 11, 12])
    assert manifest.frame_hash(shuffled) == manifest.frame_hash(frame)
    assert manifest.frame_hash(reindexed) == manifest.frame_hash(frame)


@pytest.mark.parametrize(
    "changed",
    [
        lambda f: accounts(revenue=(0, 100.5)),  # one number
        lambda f: accounts(revenue=(1, 0.0)),  # NaN -> value
        lambda f: accounts(id=(2, "A4")),  # one text
        lambda f: accounts(locked_to=(0, "T2")),  # None -> text
        lambda f: f.set_geometry([shapely.Point(385000, 6672001), *f.geometry[1:]]),  # 1 metre
        lambda f: f.set_geometry([f.geometry[0], f.geometry[1], shapely.Point(1, 1)]),  # None
        lambda f: f.iloc[[1, 0, 2]].reset_index(drop=True),  # row order
        lambda f: f.iloc[:2],  # a row fewer
        lambda f: f.rename(columns={"visits": "calls"}),  # a column name
        lambda f: f.astype({"visits": "float64"}),  # a dtype
        lambda f: f.set_crs("EPSG:3857", allow_override=True),  # the CRS
        lambda f: f.drop(columns="key"),  # a column fewer
    ],
    ids=["value", "nan", "text", "none", "geometry", "empty-geometry", "row-order", "rows",
         "column-name", "dtype", "crs", "columns"],
)  # fmt: skip
def test_any_change_changes_the_hash(changed):
    frame = accounts()
    assert manifest.frame_hash(changed(frame)) != manifest.frame_hash(frame)


def test_hash_of_plain_dataframe_and_nan_payloads():
    a = pd.DataFrame({"x": np.array([1.0, np.nan])})
    other_nan = np.array([1.0, 0.0])
    other_nan[1] = np.float64("-nan")
    b = pd.DataFrame({"x": other_nan})
    assert manifest.frame_hash(a) == manifest.frame_hash(b)


def test_frame_hash_refuses_non_frames():
    with pytest.raises(InvalidInputError, match="DataFrame"):
        manifest.frame_hash([1, 2, 3])


def test_file_hash(tmp_path):
    path = tmp_path / "net.gpkg"
    path.write_bytes(b"network bytes")
    first = manifest.file_hash(path)
    assert first == manifest.file_hash(str(path))
    path.write_bytes(b"network bytez")
    assert manifest.file_hash(path) != first
    with pytest.raises(InvalidInputError, match=r"missing\.gpkg"):
        manifest.file_hash(tmp_path / "missing.gpkg")


def test_assignment_hash_is_order_free_and_exact():
    plan = pd.DataFrame({"id": ["A1", "A2", "A3"], "territory_id": ["T1", "T2", "T1"]})
    digest = manifest.assignment_hash(plan, "id")
    assert manifest.assignment_hash(plan.iloc[::-1], "id") == digest
    moved = plan.assign(territory_id=["T1", "T1", "T1"])
    assert manifest.assignment_hash(moved, "id") != digest
    ints = pd.DataFrame({"id": [1, 2], "territory_id": [1.0, 2.0]})
    assert manifest.assignment_hash(ints, "id") == manifest.assignment_hash(
        pd.DataFrame({"id": ["1", "2"], "territory_id": ["1", "2"]}), "id"
    )
    with pytest.raises(InvalidInputError, match="territory_id"):
        manifest.assignment_hash(plan.drop(columns="territory_id"), "id")


# ---------------------------------------------------------------------------- build / write / read
def test_build_manifest_has_every_key_and_is_json():
    params = {"ACCOUNTS": "/data/a.gpkg|layername=accounts", "SEED": 3, "SOLVER": 0,
              "TIME_LIMIT": 20.0, "BALANCE_FIELDS": ("revenue",), "MAX_MOVES": None}  # fmt: skip
    built = manifest.build_manifest(
        "territory_planner:designterritories",
        params,
        {"ACCOUNTS": "h1", "REPS": None},
        figures(),
        {"versions": {"qgis": "3.22.16"}, "solver": "CBC", "outputs": {"OUTPUT": "/o.gpkg"}},
    )
    for key in ("manifest_version", "algorithm", "created", "plugin_version", "versions",
                "parameters", "input_hashes", "results", "assignment_hash", "seed", "solver",
                "outputs"):  # fmt: skip
        assert key in built, key
    assert built["plugin_version"] == __version__
    assert built["versions"]["qgis"] == "3.22.16"
    for lib in ("python", "numpy", "scipy", "pandas", "geopandas", "shapely", "pulp", "highspy",
                "osmnx"):  # fmt: skip
        assert lib in built["versions"]
    assert built["versions"]["numpy"] == np.__version__
    assert built["seed"] == 3
    assert built["solver"] == "CBC"
    assert built["parameters"]["BALANCE_FIELDS"] == ["revenue"]
    assert built["results"]["moved"] == 4
    assert built["results"]["kpis"] == {"cv_revenue": 0.05, "cv_travel": None}
    assert built["assignment_hash"] == "abc"
    assert built["created"].endswith("+00:00")
    json.dumps(built, allow_nan=False)  # strict JSON


def test_write_then_read_round_trip(tmp_path):
    built = manifest.build_manifest("territory_planner:x", {"SEED": 1}, {"A": "h"}, figures())
    path = tmp_path / "sub" / "run.json"
    assert manifest.write_manifest(path, built) == str(path)
    assert manifest.read_manifest(path) == json.loads(json.dumps(built))
    assert os.listdir(path.parent) == ["run.json"]
    built["results"]["objective"] = 99.0
    manifest.write_manifest(path, built)  # replaces the old file
    assert manifest.read_manifest(path)["results"]["objective"] == 99.0


def test_write_failure_leaves_no_file(tmp_path, monkeypatch):
    path = tmp_path / "run.json"
    path.write_text('{"old": true}')

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(manifest.os, "replace", broken_replace)
    built = manifest.build_manifest("territory_planner:x", {}, {}, figures())
    with pytest.raises(InvalidInputError, match="No space left"):
        manifest.write_manifest(path, built)
    assert os.listdir(tmp_path) == ["run.json"]  # no temporary file left behind
    assert path.read_text() == '{"old": true}'  # the old file is untouched


def test_write_interrupted_midway_leaves_nothing(tmp_path, monkeypatch):
    def interrupted(fd):
        raise RuntimeError("interrupted while writing")

    monkeypatch.setattr(manifest.os, "fsync", interrupted)
    built = manifest.build_manifest("territory_planner:x", {}, {}, figures())
    with pytest.raises(RuntimeError, match="interrupted"):
        manifest.write_manifest(tmp_path / "run.json", built)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        ("not json {", "not valid JSON"),
        ("[1, 2]", "not a Territory Planner run manifest"),
        ('{"manifest_version": 99, "plugin_version": "9.0"}', "version 99"),
        ('{"manifest_version": 1, "algorithm": "x"}', "lacks"),
    ],
)
def test_read_errors_are_clear(tmp_path, content, message):
    path = tmp_path / "run.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(InvalidInputError, match=message) as err:
        manifest.read_manifest(path)
    assert "MANIFEST" in str(err.value)


# ---------------------------------------------------------------------------- checks
def test_check_inputs_lists_changed_inputs():
    recorded = {"input_hashes": {"ACCOUNTS": "a", "REPS": None, "NETWORK": "n"}}
    assert manifest.check_inputs(recorded, {"ACCOUNTS": "a", "REPS": None, "NETWORK": "n"}) == []
    assert manifest.check_inputs(recorded, {"ACCOUNTS": "b", "REPS": "r", "NETWORK": "n"}) == [
        "ACCOUNTS",
        "REPS",
    ]
    assert manifest.check_inputs(recorded, {"ACCOUNTS": "a", "REPS": None}) == ["NETWORK"]


def test_differing_parameters():
    recorded = {"parameters": {"SEED": 1, "TOLERANCE": 10, "BALANCE_FIELDS": ["r", "v"],
                               "MAX_MOVES": None, "ACCOUNTS": "/a.gpkg"}}  # fmt: skip
    same = {"SEED": 1, "TOLERANCE": 10.0, "BALANCE_FIELDS": ("r", "v"), "MAX_MOVES": "",
            "ACCOUNTS": "/copy.gpkg"}  # fmt: skip
    assert manifest.differing_parameters(recorded, same, skip={"ACCOUNTS"}) == []
    other = {**same, "SEED": 2, "BALANCE_FIELDS": ["v", "r"]}
    assert [k for k, _, _ in manifest.differing_parameters(recorded, other, skip={"ACCOUNTS"})] == [
        "BALANCE_FIELDS",
        "SEED",
    ]
