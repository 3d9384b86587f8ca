import subprocess
import sys

from shapely.geometry import box

from territory_planner_plugin import palette


def test_neighbours_differ_and_deterministic():
    geoms = {f"T{i}": box(i, 0, i + 1, 1) for i in range(6)}  # a row: i touches i+1
    adj = palette.adjacency_from_geometries(geoms)
    assert adj["T0"] == {"T1"}
    cols = palette.assign_colours(list(geoms), adj)
    for a, ns in adj.items():
        for b in ns:
            assert cols[a] != cols[b]
    assert cols == palette.assign_colours(list(geoms), adj)


def test_more_keys_than_palette_and_kml():
    keys = list(range(40))
    cols = palette.assign_colours(keys)
    assert len(set(cols.values())) == len(palette.PALETTE)
    assert palette.kml_colour("#112233") == "ff332211"


def test_engine_module_is_qgis_free():
    code = "import sys, territory_planner_plugin.palette; assert 'qgis' not in sys.modules"
    subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        cwd=str(__import__("pathlib").Path(__file__).parents[2]),
    )
