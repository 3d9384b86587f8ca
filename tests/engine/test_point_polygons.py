"""Territory polygons of point accounts and their tight outline, against plain references."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import shapely
from scipy.spatial import cKDTree

from territory_planner_plugin.adjacency import (
    _concave_hull,
    _delaunay,
    _disk_union,
    territory_polygons,
    tight_outline,
)


def points(kind: str, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "uniform":
        return rng.uniform(0, 20_000, (n, 2))
    if kind == "grid":  # cocircular points everywhere (addresses along straight streets)
        side = math.ceil(math.sqrt(n))
        g = np.stack(np.meshgrid(np.arange(side), np.arange(side)), -1).reshape(-1, 2) * 100.0
        return g[rng.permutation(len(g))[:n]]
    hubs = rng.uniform(0, 60_000, (6, 2))  # towns apart, sparse fringes, empty land between
    return hubs[rng.integers(len(hubs), size=n)] + rng.normal(0, 2_500, (n, 2))


def plan(xy: np.ndarray, how: str, k: int, seed: int) -> np.ndarray:
    """A random assignment (territories interleaved) or the nearest of k centres; territory k-1
    is left empty."""
    rng = np.random.default_rng(seed)
    if how == "random":
        return rng.integers(0, k - 1, len(xy))
    centres = xy[rng.choice(len(xy), k - 1, replace=False)]
    return cKDTree(centres).query(xy)[1]


def reference(xy: np.ndarray, assign: np.ndarray, k: int, area) -> list:
    """The former implementation: each territory the union of its accounts' Voronoi cells (the
    first account's territory for duplicates), clipped to the area."""
    uniq, first = np.unique(xy, axis=0, return_index=True)
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(uniq), extend_to=area))
    owner = assign[first][cKDTree(uniq).query(shapely.get_coordinates(shapely.centroid(cells)))[1]]
    return [shapely.intersection(shapely.union_all(cells[owner == j]), area) for j in range(k)]


@pytest.mark.parametrize("kind", ["uniform", "clustered", "grid"])
@pytest.mark.parametrize("how", ["random", "nearest"])
def test_polygons_tile_the_outline_and_match_the_union_of_cells(kind, how) -> None:
    xy = points(kind, 2_000, seed=3)
    xy = np.vstack([xy, xy[:40]])  # duplicates: the first account's territory
    k = 8
    assign = plan(xy, how, k, seed=5)
    assign[-40:] = (assign[:40] + 1) % (k - 1)
    cells: dict = {}
    area = tight_outline(xy, cells)
    polys = territory_polygons(xy, assign, k, area, cells=cells)
    assert len(polys) == k
    assert polys[k - 1].is_empty  # an empty territory has an empty polygon
    assert all(p.is_valid for p in polys)
    total = area.area
    assert sum(p.area for p in polys) == pytest.approx(total, rel=1e-9)  # no overlap, no gap
    union = shapely.union_all(polys)
    assert shapely.symmetric_difference(union, area).area < 1e-9 * total
    for i, j in itertools.combinations(range(k), 2):
        with np.errstate(invalid="ignore"):  # GEOS flags some shared edges of touching polygons
            assert shapely.intersection(polys[i], polys[j]).area < 1e-9 * total
    owner = assign.copy()
    owner[-40:] = assign[:40]  # duplicates keep the first account's territory
    for j in range(k - 1):
        assert shapely.covers(polys[j], shapely.points(xy[owner == j])).all()
    ref = reference(xy, assign, k, area)
    for j in range(k):
        assert shapely.symmetric_difference(polys[j], ref[j]).area < 1e-7 * total
    again = territory_polygons(xy, assign, k, area)  # without the outline's triangulation
    for j in range(k):
        assert shapely.symmetric_difference(polys[j], again[j]).area < 1e-9 * total


def test_a_study_area_clips_the_polygons() -> None:
    xy = points("uniform", 1_500, seed=7)
    area = shapely.Polygon([(2_000, 1_000), (18_000, 4_000), (15_000, 25_000), (-3_000, 12_000)])
    area = area.difference(shapely.Point(9_000, 9_000).buffer(2_000))  # with a hole (a lake)
    assign = plan(xy, "nearest", 6, seed=2)
    polys = territory_polygons(xy, assign, 6, area)
    assert shapely.symmetric_difference(shapely.union_all(polys), area).area < 1e-9 * area.area
    assert sum(p.area for p in polys) == pytest.approx(area.area, rel=1e-9)
    ref = reference(xy, assign, 6, area)
    for j in range(6):
        assert shapely.symmetric_difference(polys[j], ref[j]).area < 1e-7 * area.area
    inside = shapely.covers(area, shapely.points(xy))
    for j in range(5):
        assert shapely.covers(polys[j], shapely.points(xy[inside & (assign == j)])).all()


def test_one_territory_and_few_points() -> None:
    xy = points("clustered", 300, seed=1)
    area = tight_outline(xy)
    polys = territory_polygons(xy, np.zeros(len(xy), int), 2, area)
    assert shapely.symmetric_difference(polys[0], area).area < 1e-9 * area.area
    assert polys[1].is_empty
    line = np.column_stack([np.arange(5) * 100.0, np.zeros(5)])  # all on a line: no triangles
    outline = tight_outline(line)
    polys = territory_polygons(line, np.array([0, 0, 1, 1, 1]), 2, outline)
    assert shapely.covers(polys[0], shapely.points(line[:2])).all()
    assert sum(p.area for p in polys) == pytest.approx(outline.area, rel=1e-9)


@pytest.mark.parametrize("kind", ["uniform", "clustered"])
def test_concave_hull_is_the_geos_one(kind) -> None:
    xy = np.unique(points(kind, 3_000, seed=11), axis=0)
    tri = _delaunay(xy)
    shift = xy.mean(0)
    ours = _concave_hull(xy - shift, tri, 0.3, shift)
    geos = shapely.concave_hull(shapely.multipoints(xy), ratio=0.3)
    assert ours.is_valid
    assert shapely.get_num_geometries(ours) == 1
    assert shapely.dwithin(ours, shapely.points(xy), 1e-6).all()  # on its border or inside
    # GEOS's own triangulation leaves out a few flat triangles along the convex hull (and so
    # erodes a little more there): the same hull up to those
    assert shapely.symmetric_difference(ours, geos).area < 0.01 * geos.area


@pytest.mark.parametrize("kind", ["uniform", "clustered"])
def test_disk_union_is_the_union_of_the_disks(kind) -> None:
    xy = np.unique(points(kind, 3_000, seed=13), axis=0)
    tri = _delaunay(xy)
    shift = xy.mean(0)
    pts = xy - shift
    from territory_planner_plugin.adjacency import _circumcentres, _edges

    reach = 450.0
    ours = _disk_union(pts, tri, _circumcentres(pts, tri.simplices), _edges(tri), reach, shift)
    assert ours.is_valid
    inner = reach * math.cos(math.pi / 16)  # the arcs' chords stay outside this radius
    small = shapely.union_all(shapely.buffer(shapely.points(xy), inner, quad_segs=32))
    big = shapely.union_all(shapely.buffer(shapely.points(xy), reach, quad_segs=32))
    assert shapely.difference(small, ours).area < 1e-6 * big.area
    assert shapely.difference(ours, big).area < 1e-6 * big.area


def test_outline_holds_every_account_and_stays_near_them() -> None:
    xy = points("clustered", 4_000, seed=17)
    outline = tight_outline(xy)
    assert outline.is_valid
    assert shapely.contains_properly(outline, shapely.points(xy)).all()
    nn = cKDTree(xy).query(xy, k=2)[0][:, 1]
    reach = max(3 * np.median(nn), 1.5 * np.quantile(nn, 0.95))
    edge = shapely.get_coordinates(shapely.segmentize(shapely.boundary(outline), reach / 4))
    far = cKDTree(xy).query(edge)[0].max()
    assert far <= reach * (1 + 1e-9)  # never farther than a few spacings from an account
    hull = shapely.concave_hull(shapely.multipoints(xy), ratio=0.3)
    assert shapely.difference(outline, shapely.buffer(hull, np.median(nn) * 1.001)).area < (
        1e-4 * outline.area
    )  # the concave hull plus a margin of the typical spacing
    # the former outline (16-sided disks unioned): the same up to the disks' corners
    old = shapely.intersection(
        shapely.buffer(hull, np.median(nn), quad_segs=4),
        shapely.union_all(shapely.buffer(shapely.points(xy), reach, quad_segs=4)),
    )
    assert shapely.symmetric_difference(outline, old).area < 0.02 * old.area
