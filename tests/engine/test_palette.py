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


def test_plan_colours_keep_existing_and_keep_neighbours_apart():
    from territory_planner_plugin.palette import PALETTE, plan_colours

    adj = {"T1": {"T2"}, "T2": {"T1", "T3"}, "T3": {"T2"}}
    first = plan_colours(["T1", "T2", "T3"], adjacency=adj)
    assert first["T1"] != first["T2"]
    assert first["T2"] != first["T3"]
    assert plan_colours(["T1", "T2", "T3"], adjacency=adj) == first  # deterministic
    # a later plan of the same territories (plus a new one) keeps every colour it is given
    later = plan_colours(["T1", "T2", "T3", "T4"], existing=first)
    assert {k: later[k] for k in first} == first
    assert later["T4"] not in first.values()
    assert set(later.values()) <= set(PALETTE)


def test_colours_from_table_reads_first_valid_colour():
    import pandas as pd

    from territory_planner_plugin.palette import colours_from_table

    df = pd.DataFrame(
        {"territory_id": ["A", "A", "B", None], "colour": [None, "#e69f00", "zz", "#000000"]}
    )
    assert colours_from_table(df) == {"A": "#E69F00"}
    assert colours_from_table(df.drop(columns="colour")) == {}


def test_neighbours_get_colours_told_apart_not_only_different():
    """Grids of 4 to 16 territories (as design makes them): every territory its own colour, and
    no two neighbours in colours hard to tell apart (sky blue and blue, amber and vermillion:
    CIE76 distance below NEAR_DELTA_E) where the palette allows, in both colourers."""
    from territory_planner_plugin.palette import PALETTE, _lab, assign_colours, near, plan_colours

    assert near("#56B4E9", "#0072B2")  # the palette's two blues
    assert near("#E69F00", "#D55E00")  # amber and vermillion
    assert not near("#E69F00", "#56B4E9")
    assert _lab("#FFFFFF")[0] > 99.9  # white: lightness 100
    for rows, cols in ((2, 2), (2, 4), (3, 3), (2, 5), (3, 4), (4, 4)):
        geoms = {f"T{r * cols + c + 1:02d}": box(c, r, c + 1, r + 1)
                 for r in range(rows) for c in range(cols)}  # fmt: skip
        adj = palette.adjacency_from_geometries(geoms)
        for colours in (plan_colours(list(geoms), adjacency=adj), assign_colours(list(geoms), adj)):
            assert len(set(colours.values())) == len(geoms)  # one colour per territory
            assert set(colours.values()) <= set(PALETTE)
            close = [(a, b) for a in adj for b in adj[a] if near(colours[a], colours[b])]
            assert not close, (rows, cols, close)
