"""Contiguity: which units touch, how many pieces each territory has, plans in one piece each.

Adjacency comes from shared boundaries of unit polygons (rook: a shared edge, queen: any shared
point) with a small snapping tolerance for digitising gaps, or from the Voronoi cells of point
accounts inside a study area. Groups with no land neighbour (islands, exclaves) are linked to
their nearest unit, so the graph is always connected and never makes a plan infeasible alone.

:func:`make_contiguous` turns any plan (e.g. the balanced assignment of :mod:`assignment`) into
one whose every territory is one connected piece: split territories keep their main piece and
hand the other pieces to neighbours (region growing), then boundary moves and ejection chains
restore the balance bounds and a local search of boundary moves and swaps that keep every
territory connected lowers the cost; then rounds of the balanced assignment over each unit's own
and neighbouring territories trade the balance at every border at once (units left apart go
back, then the same repair, balance and search). :func:`contiguous_milp` is the exact model (single-commodity
flow from a root per territory, HiGHS through SciPy): the reference on small cases and the
path of :meth:`model.TerritoryModel.solve` for county-sized models, after
:func:`contiguous_cuts` (root-free a-b separator cuts), whose bound holds for the problem as posed.
The exact models take one :class:`ContiguousProblem` (a territory model's arrays, normalised once).
"""

from __future__ import annotations

import heapq
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np
import scipy.sparse as sp
import shapely
from scipy.sparse.csgraph import connected_components
from scipy.spatial import Delaunay, QhullError, cKDTree

from .assignment import totals
from .constraints import pair_constraints
from .errors import ContiguityError, InfeasibleError, InvalidInputError
from .progress import CancelCheck, check_cancel

logger = logging.getLogger(__name__)

ADJACENCY_RULES = ("rook", "queen")
OUTLINE_RATIO = 0.3  # concave hull ratio of tight_outline (0 = most concave, 1 = convex hull)
_EXACT_FALLBACK_PAIRS = 2_500  # heuristic stuck on balance: try the exact model up to this n * k
_ROUNDS = 12  # most rounds of the balanced assignment over neighbouring territories (no deadline)
_ROUND_STALLS = 3  # ... stopped after this many rounds in a row without gain
_ROUND_MIN_GAIN = 1e-4  # ... a round lowering the cost by less than this share counts as none


@dataclass(frozen=True)
class Adjacency:
    """Neighbours of units: a symmetric 0/1 matrix plus what was added to make it connected.

    ``matrix`` (n, n) has no diagonal and includes the island links; ``linked`` lists those
    links (unit of a group with no land neighbour, nearest unit outside it); ``snapped`` counts
    neighbour pairs found only within the snapping tolerance.
    """

    matrix: sp.csr_matrix
    linked: list[tuple[int, int]]
    snapped: int


# ----------------------------------------------------------------------------- adjacency


def polygon_adjacency(geoms, *, rule: str = "rook", snap_m: float = 1.0) -> Adjacency:
    """Neighbours of polygons by shared boundary, linked into one connected graph.

    Parameters
    ----------
    geoms : sequence of shapely geometries (or a GeoSeries), projected, in metres.
    rule : "rook" (a shared edge) or "queen" (any shared point).
    snap_m : gaps up to this distance count as shared (digitising gaps); 0 for exact only.

    Returns
    -------
    Adjacency : the matrix, the island links and the number of pairs found only by snapping.
    """
    if rule not in ADJACENCY_RULES:
        msg = f"ADJACENCY: '{rule}' is not one of {', '.join(ADJACENCY_RULES)}."
        raise InvalidInputError(msg)
    g = geometry_array(geoms)
    n = len(g)
    if n and (shapely.is_missing(g) | shapely.is_empty(g)).any():
        bad = np.flatnonzero(shapely.is_missing(g) | shapely.is_empty(g))
        msg = f"UNITS: rows {bad[:10].tolist()} have no geometry; remove them or fix them."
        raise InvalidInputError(msg)
    snap = max(float(snap_m), 0.0)
    rows = np.zeros(0, int)
    cols = np.zeros(0, int)
    snapped = 0
    if n > 1:
        with np.errstate(invalid="ignore"):  # GEOS may flag degenerate shared boundaries
            rows, cols, snapped = _neighbour_pairs(g, rule, snap)
    matrix = _symmetric(rows, cols, n)
    matrix, linked = _link_components(g, matrix)
    if snapped:
        logger.info("Adjacency: %d neighbour pair(s) found only within the %.2f m snapping "
                    "tolerance (digitising gaps).", snapped, snap)  # fmt: skip
    return Adjacency(matrix=matrix, linked=linked, snapped=snapped)


def _neighbour_pairs(g: np.ndarray, rule: str, snap: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Neighbour pairs (i < j) under the rule and the number found only by snapping."""
    tree = shapely.STRtree(g)
    snapped = 0
    left, right = tree.query(g, predicate="dwithin", distance=snap)
    keep = left < right
    left, right = left[keep], right[keep]
    a, b = g[left], g[right]
    touch = shapely.intersects(a, b)
    if rule == "queen":
        ok = np.ones(len(left), bool)
        snapped = int((~touch).sum())
    else:
        ba, bb = shapely.boundary(a), shapely.boundary(b)
        shared = shapely.length(shapely.intersection(ba, bb))
        overlap = touch & ~shapely.touches(a, b)  # interiors overlap: neighbours too
        ok = (shared > max(1e-6, 0.05 * snap)) | overlap
        rest = np.flatnonzero(~ok)
        if snap > 0 and len(rest):
            # An edge within the tolerance: longer than the ~2 x snap a corner contact gives.
            near = shapely.length(
                shapely.intersection(ba[rest], shapely.buffer(bb[rest], snap, quad_segs=2))
            )
            hit = near > 3.0 * snap
            ok[rest[hit]] = True
            snapped = int(hit.sum())
    return left[ok], right[ok], snapped


def point_adjacency(
    xy: np.ndarray, *, study_area=None, with_cells: bool = True
) -> tuple[Adjacency, np.ndarray | None]:
    """Neighbours of point accounts: the adjacency of their Voronoi cells inside an area.

    Two accounts are neighbours when their Voronoi cells share an edge inside the area (the dual
    edge of a Delaunay edge, tested against the area: no cell is clipped). Groups of accounts
    with no neighbour outside (towns apart, islands) are linked to every group next to them,
    through the shortest Delaunay edge between the two, so a town can be reached from each side.

    Parameters
    ----------
    xy : (n, 2) projected coordinates in metres (duplicates share one cell and are neighbours).
    study_area : shapely geometry, GeoSeries or GeoDataFrame clipping the cells; default
        :func:`tight_outline` of the points.
    with_cells : also return each account's cell clipped to the area (slower; the plan's
        territory polygons use :func:`territory_polygons` instead).

    Returns
    -------
    (Adjacency, cells) : adjacency of the cells and an object array of one polygon per point
        (same order; empty when the point's cell lies outside the study area), or None for cells
        when ``with_cells`` is false.
    """
    xy = np.asarray(xy, float).reshape(-1, 2)
    n = len(xy)
    if n == 0:
        msg = "ACCOUNTS: there are no accounts to build territories from."
        raise InvalidInputError(msg)
    area = tight_outline(xy) if study_area is None else _as_geometry(study_area)
    uniq, first, inverse = _distinct(xy)
    tri = _delaunay(uniq)
    if tri is None:  # fewer than 3 distinct points or all on a line: clip the few cells
        cells_u = _clipped_cells(uniq, area)
        empty = shapely.is_empty(cells_u)
        adj_u = polygon_adjacency(np.where(empty, shapely.points(uniq), cells_u), rule="rook",
                                  snap_m=0.0)  # fmt: skip
    else:
        cells_u = _clipped_cells(uniq, area) if with_cells else None
        adj_u = _delaunay_adjacency(uniq, tri, area)
    p = sp.csr_matrix((np.ones(n), (np.arange(n), inverse)), shape=(n, len(uniq)))
    same = (p @ p.T).tolil()
    same.setdiag(0)
    full = p @ adj_u.matrix @ p.T + same.tocsr()
    matrix = _binary(full)
    linked = [(int(first[i]), int(first[j])) for i, j in adj_u.linked]
    cells = None
    if with_cells:
        cells = np.empty(n, dtype=object)
        cells[:] = list(cells_u[inverse])
    return Adjacency(matrix=matrix, linked=linked, snapped=adj_u.snapped), cells


def _distinct(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct points in lexicographic order (as ``np.unique(xy, axis=0)``, faster), the
    first account at each and each account's distinct point."""
    order = np.lexsort((xy[:, 1], xy[:, 0]))
    s = xy[order]
    new = np.r_[True, (s[1:] != s[:-1]).any(1)] if len(s) else np.zeros(0, bool)
    inverse = np.empty(len(xy), np.int64)
    inverse[order] = np.cumsum(new) - 1
    return s[new], order[new], inverse


def _delaunay(uniq: np.ndarray):
    if len(uniq) < 3:
        return None
    try:
        return Delaunay(uniq - uniq.mean(0))
    except QhullError:
        return None


def _delaunay_adjacency(uniq: np.ndarray, tri, area) -> Adjacency:
    """Delaunay edges whose dual Voronoi edge runs inside ``area`` (longer than a micrometre),
    then groups linked along the shortest Delaunay edge to each neighbouring group."""
    pts = uniq - uniq.mean(0)
    edges = _edges(tri)
    u, w = edges[3], edges[4]
    x0, y0, x1, y1 = shapely.bounds(area)
    span = 4.0 * (math.hypot(x1 - x0, y1 - y0) + np.ptp(pts, axis=0).sum() + 1.0)
    seg = _ridges(pts, tri, _circumcentres(pts, tri.simplices), edges, span)
    start, end = seg[:, 0], seg[:, 1]
    ok = np.isfinite(start).all(1) & np.isfinite(end).all(1)
    shift = uniq.mean(0)
    segs = shapely.linestrings(np.stack([start + shift, end + shift], axis=1)[ok])
    u, w = u[ok], w[ok]
    shapely.prepare(area)
    hit = shapely.intersects(area, segs)
    idx = np.flatnonzero(hit)
    inside = shapely.contains_properly(area, segs[idx])
    part = idx[~inside]
    good = np.zeros(len(segs), bool)
    good[idx[inside]] = shapely.length(segs[idx[inside]]) > 1e-6
    if len(part):  # length inside the area, tile by tile (one big intersection is slow)
        tiles = _tiles(area)
        si, ti = shapely.STRtree(tiles).query(segs[part], predicate="intersects")
        with np.errstate(invalid="ignore"):
            cut = shapely.intersection(segs[part][si], tiles[ti])
        inside_m = np.bincount(si, weights=shapely.length(cut), minlength=len(part))
        good[part] = inside_m > 1e-6
    m = len(uniq)
    matrix = _symmetric(u[good], w[good], m)
    matrix, linked = _link_delaunay(pts, tri, matrix)
    return Adjacency(matrix=matrix, linked=linked, snapped=0)


def _tiles(area, vertices_per_tile: int = 40) -> np.ndarray:
    """The area cut by a square grid into pieces of a few dozen vertices each (for fast clips)."""
    g = max(1, math.ceil(math.sqrt(shapely.get_num_coordinates(area) / vertices_per_tile)))
    x0, y0, x1, y1 = shapely.bounds(area)
    xs, ys = np.linspace(x0, x1, g + 1), np.linspace(y0, y1, g + 1)
    if g == 1:
        return np.array([area], dtype=object)
    parts = np.empty(g * g, dtype=object)
    parts[:] = [shapely.clip_by_rect(area, xs[i], ys[j], xs[i + 1], ys[j + 1])
                for i in range(g) for j in range(g)]  # fmt: skip
    parts = parts[~shapely.is_empty(parts)]
    bad = ~shapely.is_valid(parts)
    parts[bad] = shapely.make_valid(parts[bad])  # clip_by_rect may leave a dirty ring
    return parts


def _link_delaunay(pts: np.ndarray, tri, matrix: sp.csr_matrix) -> tuple[sp.csr_matrix, list]:
    """Link each pair of groups that are Delaunay neighbours by their shortest Delaunay edge."""
    n_comp, labels = connected_components(matrix, directed=False)
    if n_comp <= 1:
        return matrix, []
    indptr, nbrs = tri.vertex_neighbor_vertices
    src = np.repeat(np.arange(len(pts)), np.diff(indptr))
    dst = nbrs
    cross = (labels[src] != labels[dst]) & (src < dst)
    src, dst = src[cross], dst[cross]
    dist = np.linalg.norm(pts[src] - pts[dst], axis=1)
    la, lb = labels[src], labels[dst]
    key = np.minimum(la, lb).astype(np.int64) * n_comp + np.maximum(la, lb)
    order = np.lexsort((dst, src, dist, key))
    first = order[np.r_[True, key[order][1:] != key[order][:-1]]]
    sizes = np.bincount(labels)
    linked = []
    for e in first.tolist():  # the unit of the smaller group first
        i, j = int(src[e]), int(dst[e])
        if sizes[labels[i]] > sizes[labels[j]] or (sizes[labels[i]] == sizes[labels[j]] and i > j):
            i, j = j, i
        linked.append((i, j))
    r = np.array([p[0] for p in linked])
    c = np.array([p[1] for p in linked])
    matrix = _binary(matrix + _symmetric(r, c, len(pts)))
    logger.info("Adjacency: %d group(s) of accounts with no neighbour across the study area "
                "(towns apart, islands) linked to each neighbouring group by %d link(s).",
                n_comp - 1, len(linked))  # fmt: skip
    return matrix, linked


def _clipped_cells(uniq: np.ndarray, area) -> np.ndarray:
    """The Voronoi cell of each distinct point clipped to ``area`` (slow on many points)."""
    if len(uniq) == 1:
        return np.array([area], dtype=object)
    return shapely.intersection(voronoi_cells(uniq, area), area)


def voronoi_cells(uniq: np.ndarray, extend_to) -> np.ndarray:
    """The Voronoi cell of each distinct point (in the order of ``uniq``), reaching ``extend_to``.

    Each cell is matched to its point through a point inside it (its centroid: the cells are
    convex) and the nearest point to that (k-d tree), not a spatial join of every point.
    """
    pts = shapely.points(uniq)
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(pts),
                                                       extend_to=extend_to))  # fmt: skip
    inside = shapely.get_coordinates(shapely.centroid(cells))
    owner = cKDTree(uniq).query(inside)[1]
    out = np.empty(len(uniq), dtype=object)
    out[:] = [shapely.Polygon()] * len(uniq)
    out[owner] = cells
    if len(np.unique(owner)) != len(cells) or len(cells) != len(uniq):  # pragma: no cover
        p_idx, c_idx = shapely.STRtree(cells).query(pts, predicate="within")
        out[:] = [shapely.Polygon()] * len(uniq)
        out[p_idx] = cells[c_idx]
        if len(np.unique(p_idx)) != len(uniq):
            msg = "Voronoi cells could not be matched to the accounts."
            raise RuntimeError(msg)
    return out


def _circumcentres(pts: np.ndarray, simp: np.ndarray) -> np.ndarray:
    """The circumcentre of each triangle (NaN for a flat one)."""
    a, b, c = pts[simp[:, 0]], pts[simp[:, 1]], pts[simp[:, 2]]
    d = 2.0 * (a[:, 0] * (b[:, 1] - c[:, 1]) + b[:, 0] * (c[:, 1] - a[:, 1])
               + c[:, 0] * (a[:, 1] - b[:, 1]))  # fmt: skip
    sa, sb, sc = (a**2).sum(1), (b**2).sum(1), (c**2).sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.column_stack([
            (sa * (b[:, 1] - c[:, 1]) + sb * (c[:, 1] - a[:, 1]) + sc * (a[:, 1] - b[:, 1])) / d,
            (sa * (c[:, 0] - b[:, 0]) + sb * (a[:, 0] - c[:, 0]) + sc * (b[:, 0] - a[:, 0])) / d,
        ])  # fmt: skip


def _edges(tri) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each Delaunay edge once: its triangle, the opposite vertex slot, the triangle across it
    (-1 on the convex hull) and its two points."""
    simp = tri.simplices
    nt = len(simp)
    t = np.repeat(np.arange(nt), 3)
    opp = np.tile(np.arange(3), nt)
    nb = tri.neighbors.ravel()
    keep = (nb < 0) | (t < nb)
    t, opp, nb = t[keep], opp[keep], nb[keep]
    return t, opp, nb, simp[t, (opp + 1) % 3], simp[t, (opp + 2) % 3]


def _ridges(pts: np.ndarray, tri, cc: np.ndarray, edges: tuple, span: float) -> np.ndarray:
    """The Voronoi edge (segment, or ray of length ``span`` on the hull) dual to each given
    Delaunay edge, as an (e, 2, 2) array; NaN where a flat triangle has no circumcentre."""
    t, opp, nb, u, w = edges
    start = cc[t]
    end = np.where(nb[:, None] >= 0, cc[np.maximum(nb, 0)], np.nan)
    hull = nb < 0
    if hull.any():  # a ray from the circumcentre, away from the opposite vertex
        e = pts[w[hull]] - pts[u[hull]]
        normal = np.column_stack([-e[:, 1], e[:, 0]])
        away = ((pts[tri.simplices[t[hull], opp[hull]]] - pts[u[hull]]) * normal).sum(1) > 0
        normal[away] *= -1.0
        normal /= np.maximum(np.linalg.norm(normal, axis=1), 1e-300)[:, None]
        extra = np.abs(start[hull])
        span += 2.0 * float(extra.max()) if np.isfinite(extra).all() else 0.0
        end[hull] = start[hull] + span * normal
    return np.stack([start, end], axis=1)


def _site_of(tri, m: int) -> np.ndarray:
    """For each of ``m`` points, itself, or the vertex Qhull merged it into (a point closer to a
    vertex than its precision is left out of the triangulation and shares that vertex's cell)."""
    site = np.arange(m)
    if len(tri.coplanar):
        site[tri.coplanar[:, 0]] = tri.coplanar[:, 2]
    return site


@dataclass(frozen=True)
class _Mesh:
    """A Delaunay triangulation without its flat triangles (collinear points along the hull):
    their neighbours' edges become hull edges, whose Voronoi edges are rays."""

    simplices: np.ndarray
    neighbors: np.ndarray
    coplanar: np.ndarray

    @property
    def convex_hull(self) -> np.ndarray:
        """The (h, 2) points of the hull edges."""
        t, i = np.nonzero(self.neighbors < 0)
        return np.column_stack([self.simplices[t, (i + 1) % 3], self.simplices[t, (i + 2) % 3]])


def _mesh(pts: np.ndarray) -> tuple[_Mesh, np.ndarray] | None:
    """The Delaunay triangulation of distinct centred points for Voronoi edges, with the
    triangles' circumcentres; None for fewer than 3 points or all on a line."""
    tri = _delaunay(pts)
    if tri is None:
        return None
    cc = _circumcentres(pts, tri.simplices)
    size = float(np.ptp(pts, axis=0).max()) + 1.0
    flat = ~(np.abs(cc).max(1) < 1e6 * size)  # NaN too
    if flat.all():  # points on a line within rounding
        return None
    mesh = _Mesh(tri.simplices, tri.neighbors, tri.coplanar)
    if flat.any():
        keep = np.flatnonzero(~flat)
        new = np.full(len(flat) + 1, -1)
        new[keep] = np.arange(len(keep))
        mesh, cc = _Mesh(tri.simplices[keep], new[tri.neighbors[keep]], tri.coplanar), cc[keep]
    # cocircular points (a grid): neighbouring triangles share one circumcentre, computed apart
    # with different roundings; the Voronoi edges of a few ulps between them would cross others
    t = np.repeat(np.arange(len(cc)), 3)
    nb = mesh.neighbors.ravel()
    same = (nb > t) & (np.abs(cc[t] - cc[np.maximum(nb, 0)]).max(1) <= 1e-9 * size)
    if same.any():
        _, label = connected_components(_symmetric(t[same], nb[same], len(cc)), directed=False)
        first = np.full(label.max() + 1, len(cc))
        np.minimum.at(first, label, np.arange(len(cc)))
        cc = cc[first[label]]
    return mesh, cc


def _faces(lines: np.ndarray, area, shift: np.ndarray) -> np.ndarray:
    """The faces of line segments (an (e, 2, 2) array, moved by ``shift``) that meet only at
    their ends, and of the boundary of ``area`` if given: the segments crossing that boundary
    are noded with it, those inside it are already noded, those outside it are left out."""
    ok = np.isfinite(lines).all(axis=(1, 2)) & (lines[:, 0] != lines[:, 1]).any(1)
    segs = shapely.linestrings(lines[ok] + shift) if ok.any() else np.empty(0, dtype=object)
    if area is not None:
        shapely.prepare(area)
        hit = shapely.intersects(area, segs)
        inside = np.zeros(len(segs), bool)
        inside[hit] = shapely.contains_properly(area, segs[hit])
        noded = shapely.union_all(np.array([shapely.multilinestrings(segs[hit & ~inside]),
                                            shapely.boundary(area)], dtype=object))  # fmt: skip
        segs = np.concatenate([segs[inside], shapely.get_parts(noded)])
    if len(segs) == 0:
        return np.empty(0, dtype=object)
    return _valid_faces(shapely.get_parts(shapely.polygonize(segs)))


def _valid_faces(faces: np.ndarray) -> np.ndarray:
    """Polygonized faces, a face whose ring touches itself (where lines pinch) split at that
    point into valid polygons."""
    bad = ~shapely.is_valid(faces)
    if not bad.any():
        return faces
    parts = shapely.get_parts(shapely.make_valid(faces[bad]))
    parts = parts[np.isin(shapely.get_type_id(parts), (3, 6))]
    return np.concatenate([faces[~bad], shapely.get_parts(parts)])


def _concave_hull(pts: np.ndarray, tri, ratio: float, shift: np.ndarray) -> shapely.Geometry:
    """The concave hull of the points (moved by ``shift``) from their Delaunay triangulation, as
    GEOS builds it: border triangles whose border edge is longer than ``ratio`` of the range of
    edge lengths are removed, longest first, unless that would disconnect the hull or drop a
    point."""
    simp = tri.simplices
    corner = pts[simp]
    elen = np.column_stack([np.linalg.norm(corner[:, (i + 2) % 3] - corner[:, (i + 1) % 3], axis=1)
                            for i in range(3)])  # fmt: skip
    threshold = ratio * (elen.max() - elen.min()) + elen.min()
    nbr = tri.neighbors.copy()
    tt, ii = np.nonzero(nbr < 0)
    on_border = np.zeros(len(pts), np.int64)  # border edges at each point
    np.add.at(on_border, simp[tt, (ii + 1) % 3], 1)
    np.add.at(on_border, simp[tt, (ii + 2) % 3], 1)
    one = np.bincount(tt, minlength=len(simp))[tt] == 1  # one border edge: may be removed
    heap = [(-float(x), int(t)) for t, x in zip(tt[one], elen[tt[one], ii[one]])
            if x >= threshold]  # fmt: skip
    heapq.heapify(heap)
    alive = np.ones(len(simp), bool)
    while heap:  # few triangles: plain Python on the arrays' items
        _, t = heapq.heappop(heap)
        nb = nbr[t]
        if not alive[t] or int((nb < 0).sum()) != 1:
            continue  # gone, inside, or removing it would drop a point
        i = int(np.argmin(nb))
        if on_border[simp[t, i]] > 0:
            continue  # its third point is on the border: removing it would disconnect
        alive[t] = False
        on_border[simp[t, i]] += 2  # its two other edges become border edges
        for j in ((i + 1) % 3, (i + 2) % 3):
            other = int(nb[j])
            slot = int(np.argmax(nbr[other] == t))
            nbr[other, slot] = -1
            if int((nbr[other] < 0).sum()) == 1 and elen[other, slot] >= threshold:
                heapq.heappush(heap, (-float(elen[other, slot]), other))
    tt, ii = np.nonzero((nbr < 0) & alive[:, None])
    seg = np.stack([pts[simp[tt, (ii + 1) % 3]], pts[simp[tt, (ii + 2) % 3]]], axis=1)
    return shapely.union_all(_faces(seg, None, shift))


def tight_outline(xy: np.ndarray, cells: dict | None = None) -> shapely.Geometry:
    """A tight area around points: their concave hull plus a small margin, never far from them.

    The margin is about the typical spacing of the points; any part of the hull farther than a
    few spacings from every point (a bay, a bridge between two clusters) is cut away.

    Parameters
    ----------
    xy : (n, 2) projected coordinates in metres.
    cells : a dict that receives the distinct points, their Delaunay triangulation and the
        outline, for :func:`territory_polygons` of the same points.

    Returns
    -------
    shapely Polygon or MultiPolygon containing every point.
    """
    xy = np.asarray(xy, float).reshape(-1, 2)
    uniq, first, _ = _distinct(xy)
    if len(uniq) == 0:
        msg = "ACCOUNTS: there are no accounts to outline."
        raise InvalidInputError(msg)
    if len(uniq) == 1:
        return shapely.buffer(shapely.points(uniq[0]), 100.0)
    shift = uniq.mean(0)
    pts = uniq - shift
    mesh = _mesh(pts)
    if mesh is None:  # two points or all on a line
        nn = cKDTree(uniq).query(uniq, k=2)[0][:, 1]
        spacing, reach = _spacing(nn)
        hull = shapely.concave_hull(shapely.multipoints(uniq), ratio=OUTLINE_RATIO)
        disks = shapely.union_all(shapely.buffer(shapely.points(uniq), reach, quad_segs=4))
        return shapely.make_valid(shapely.intersection(shapely.buffer(hull, spacing, quad_segs=4),
                                                       disks))  # fmt: skip
    tri, cc = mesh
    site = _site_of(tri, len(pts))
    edges = _edges(tri)
    nn = np.linalg.norm(pts - pts[site], axis=1)  # a merged point: to its vertex
    nn[site == np.arange(len(pts))] = np.inf
    length = np.linalg.norm(pts[edges[3]] - pts[edges[4]], axis=1)
    np.minimum.at(nn, edges[3], length)
    np.minimum.at(nn, edges[4], length)
    spacing, reach = _spacing(nn)
    hull = shapely.buffer(_concave_hull(pts, tri, OUTLINE_RATIO, shift), spacing, quad_segs=4)
    disks = _disk_union(pts, tri, cc, edges, reach, shift)
    try:
        outline = shapely.intersection(hull, disks)  # valid: an overlay's result
    except shapely.errors.GEOSException:  # pragma: no cover - disks touching along an edge
        outline = shapely.intersection(hull, shapely.make_valid(disks))
    if cells is not None:
        cells.update(xy=xy, uniq=uniq, first=first, tri=tri, cc=cc, edges=edges, outline=outline)
    return outline


def _spacing(nn: np.ndarray) -> tuple[float, float]:
    """The typical spacing of points from their nearest-neighbour distances, and the reach of
    :func:`tight_outline` (a few spacings)."""
    spacing = float(np.median(nn))
    if spacing <= 0:  # pragma: no cover - distinct points have positive distances
        spacing = 1.0
    return spacing, max(3.0 * spacing, 1.5 * float(np.quantile(nn, 0.95)))


def _disk_union(pts: np.ndarray, tri, cc: np.ndarray, edges: tuple, reach: float,
                shift: np.ndarray) -> shapely.Geometry:  # fmt: skip
    """The union of the disks of radius ``reach`` around the points (moved by ``shift``; their
    boundary drawn with a vertex at least every 1/16 turn), from their Delaunay triangulation.

    Within its Voronoi cell each point's disk is the union: the union's boundary is the arcs of
    each cell's circle inside the cell. They are drawn only for points with a Voronoi vertex
    farther than ``reach`` (a triangle of a larger circumradius) or on the hull, meet where the
    Voronoi edges leave the circles, and are polygonized; each face whose boundary runs with the
    arcs (the disks on their left) is inside.
    """
    simp = tri.simplices
    inside = np.linalg.norm(cc - pts[simp[:, 0]], axis=1) <= reach  # NaN (flat) counts as out
    out = np.zeros(len(pts), bool)  # points whose cell leaves their circle
    out[simp[~inside].ravel()] = True
    out[tri.convex_hull.ravel()] = True
    near = out[edges[3]] | out[edges[4]]
    t, opp, nb, u, w = (x[near] for x in edges)
    opp_pt = pts[simp[t, opp]]
    left = ((pts[w] - pts[u])[:, 0] * (opp_pt - pts[u])[:, 1]
            - (pts[w] - pts[u])[:, 1] * (opp_pt - pts[u])[:, 0]) > 0  # fmt: skip
    u, w = np.where(left, u, w), np.where(left, w, u)  # triangle t on the left of u -> w
    vec = pts[w] - pts[u]
    length = np.linalg.norm(vec, axis=1)
    d = np.column_stack([-vec[:, 1], vec[:, 0]]) / length[:, None]  # towards t
    mid = 0.5 * (pts[u] + pts[w])
    with np.errstate(invalid="ignore"):
        h = np.sqrt(reach * reach - 0.25 * length * length)  # NaN: the edge's ridge is outside
    lo_in = (nb >= 0) & inside[np.maximum(nb, 0)]
    hi_in = inside[t]
    s_lo = np.where(nb >= 0, ((cc[np.maximum(nb, 0)] - mid) * d).sum(1), -np.inf)
    s_hi = ((cc[t] - mid) * d).sum(1)
    with np.errstate(invalid="ignore"):
        a = np.where(lo_in, s_lo, np.maximum(s_lo, -h))
        b = np.where(hi_in, s_hi, np.minimum(s_hi, h))
        full = b > a  # NaN compares false: nothing of the ridge inside the circles
    start = np.where(lo_in[:, None], cc[np.maximum(nb, 0)], mid + a[:, None] * d)
    end = np.where(hi_in[:, None], cc[t], mid + b[:, None] * d)
    # half-edges around each point whose cell leaves its circle, counter-clockwise: u -> w runs
    # from start to end along the cell of u, w -> u from end to start along the cell of w
    p = np.concatenate([u, w])
    q = np.concatenate([w, u])
    keep = out[p] & np.concatenate([full, full])
    first = np.concatenate([start, end])[keep]
    last = np.concatenate([end, start])[keep]
    cut = np.concatenate([~hi_in, ~lo_in])[keep]  # the half-edge ends on the circle
    p, q = p[keep], q[keep]
    ang = np.arctan2(*(pts[q] - pts[p])[:, ::-1].T)
    order = np.lexsort((ang, p))
    p, first, last, cut = p[order], first[order], last[order], cut[order]
    group_start = np.r_[True, p[1:] != p[:-1]]
    starts = np.flatnonzero(group_start)
    nxt = np.arange(len(p)) + 1
    ends = np.r_[starts[1:], len(p)] - 1
    nxt[ends] = starts  # the next half-edge around the same point, cyclically
    arc_from, arc_to, arc_p = last[cut], first[nxt[cut]], p[cut]
    lone = np.flatnonzero(out & (np.bincount(p, minlength=len(pts)) == 0))  # whole circles
    step = math.pi / 8
    a0 = np.arctan2(*(arc_from - pts[arc_p])[:, ::-1].T)
    a1 = np.arctan2(*(arc_to - pts[arc_p])[:, ::-1].T)
    sweep = np.mod(a1 - a0, 2 * math.pi)
    sweep[sweep <= 0] = 2 * math.pi
    inner = np.maximum(np.ceil(sweep / step).astype(np.int64) - 1, 0)
    centre = np.concatenate([arc_p, lone])
    theta0 = np.concatenate([a0, np.zeros(len(lone))])
    delta = np.concatenate([sweep / (inner + 1), np.full(len(lone), step)])
    count = np.concatenate([inner, np.full(len(lone), 15)])
    line = np.repeat(np.arange(len(centre)), count)
    k = np.arange(len(line)) - np.repeat(np.cumsum(count) - count, count) + 1
    angle = theta0[line] + k * delta[line]
    mids = pts[centre[line]] + reach * np.column_stack([np.cos(angle), np.sin(angle)])
    # each line: its first point, its inner points, its last point (a whole circle: closed)
    lone_pt = pts[lone] + np.array([reach, 0.0])
    heads = np.concatenate([arc_from, lone_pt])
    tails = np.concatenate([arc_to, lone_pt])
    total = count + 2
    pos = np.cumsum(total) - total
    coords = np.empty((int(total.sum()), 2))
    coords[pos] = heads
    coords[pos + total - 1] = tails
    coords[np.repeat(pos, count) + k] = mids
    coords += shift
    lines = shapely.linestrings(coords, indices=np.repeat(np.arange(len(centre)), total))
    faces = shapely.get_parts(shapely.polygonize(lines))
    if len(faces) == 0:  # pragma: no cover - there is always a hull point with an arc
        return shapely.Polygon()
    ring = shapely.get_exterior_ring(faces)
    seg = np.stack([shapely.get_point(ring, 0), shapely.get_point(ring, 1)], axis=1)
    seg = shapely.get_coordinates(seg.ravel()).reshape(-1, 4)
    along = {tuple(x): True for x in np.column_stack([coords[:-1], coords[1:]])[
        np.repeat(np.arange(len(centre)), total)[:-1] == np.repeat(np.arange(len(centre)), total)[1:]
    ].tolist()}  # fmt: skip
    forward = np.array([along.get(tuple(x), False) for x in seg.tolist()])
    disk = forward == shapely.is_ccw(ring)  # the face lies left of the arcs: inside the disks
    return shapely.multipolygons(_valid_faces(faces[disk]))  # apart, or touching at points


def territory_polygons(xy: np.ndarray, assign: np.ndarray, k: int, area,
                       cells: dict | None = None) -> list:  # fmt: skip
    """Territory polygons of point accounts: the union of each territory's Voronoi cells clipped
    to ``area`` (the study area or :func:`tight_outline`); empty for an empty territory.

    Built from the Voronoi edges between accounts of different territories (Delaunay
    neighbours) and the boundary of ``area``: each face of these lines inside ``area`` goes to
    the territory of the account nearest to a point inside it. Duplicate points share the
    first account's territory.

    Parameters
    ----------
    xy : (n, 2) projected coordinates; assign : (n,) territory per account; k : territories.
    area : shapely geometry the polygons are clipped to.
    cells : what :func:`tight_outline` kept of the same points (distinct points, Delaunay
        triangulation, the outline itself): used instead of a second triangulation.

    Returns
    -------
    list of k shapely geometries.
    """
    xy = np.asarray(xy, float).reshape(-1, 2)
    assign = np.asarray(assign, int)
    if cells and cells.get("xy") is not None and np.array_equal(cells["xy"], xy):
        uniq, first, tri, cc, edges = (cells[x] for x in ("uniq", "first", "tri", "cc", "edges"))
    else:
        uniq, first, _ = _distinct(xy)
        tri, cc, edges = None, None, None
    if not (cells and area is cells.get("outline")):  # the outline is valid already
        area = _as_geometry(area)
    owner = assign[first]  # duplicates share a cell: the first account's territory
    shift = uniq.mean(0)
    pts = uniq - shift
    if tri is None and len(uniq) > 2:
        mesh = _mesh(pts)
        if mesh is not None:
            tri, cc = mesh
            edges = _edges(tri)
    out = [shapely.Polygon()] * k
    if tri is None:  # one point, two, or all on a line: the few cells themselves
        raw = np.array([area], dtype=object) if len(uniq) == 1 else voronoi_cells(uniq, area)
        for j in np.unique(owner):
            mine = raw[owner == j]
            out[j] = shapely.make_valid(shapely.intersection(shapely.coverage_union_all(mine),
                                                             area))  # fmt: skip
        return out
    owner = owner[_site_of(tri, len(pts))]
    u, w = edges[3], edges[4]
    cross = owner[u] != owner[w]
    x0, y0, x1, y1 = shapely.bounds(area)
    span = 4.0 * (math.hypot(x1 - x0, y1 - y0) + np.ptp(pts, axis=0).sum() + 1.0)
    faces = _faces(_ridges(pts, tri, cc, tuple(x[cross] for x in edges), span), area, shift)
    if len(faces) == 0:
        return out
    inside = shapely.point_on_surface(faces)
    keep = shapely.contains(area, inside)
    faces, inside = faces[keep], inside[keep]
    terr = owner[cKDTree(uniq).query(shapely.get_coordinates(inside))[1]]
    by_terr = np.argsort(terr, kind="stable")
    starts = np.searchsorted(terr[by_terr], np.arange(k + 1))
    for j in range(k):  # a territory's faces share no edge (a Voronoi edge between two of them)
        mine = faces[by_terr[starts[j] : starts[j + 1]]]
        if len(mine):
            out[j] = mine[0] if len(mine) == 1 else shapely.multipolygons(mine)
    return out


# ----------------------------------------------------------------------------- pieces


def count_pieces(assign: np.ndarray, adjacency, k: int) -> np.ndarray:
    """Number of connected pieces of each territory under the adjacency (0 = empty territory).

    Parameters
    ----------
    assign : (n,) territory index per unit (-1 = none, not counted).
    adjacency : (n, n) sparse matrix or :class:`Adjacency`.
    k : number of territories.

    Returns
    -------
    (k,) int array.
    """
    a = np.asarray(assign, int)
    labels, n_comp = _same_territory_components(a, _matrix(adjacency))
    ok = a >= 0
    terr = np.full(n_comp, -1)
    terr[labels[ok]] = a[ok]
    terr = terr[terr >= 0]
    return np.bincount(terr, minlength=k)[:k].astype(int)


def plan_pieces(geometries, territory) -> dict[str, int]:
    """Pieces of every territory of any plan (e.g. one made elsewhere): areas (polygons) by
    their shared boundaries (:func:`polygon_adjacency`), points by their Voronoi neighbours
    (:func:`point_adjacency`), as the algorithms count them. ``geometries`` is a GeoSeries
    (reprojected to a metric CRS when geographic); rows without a geometry or territory are left
    out. Returns territory key -> pieces."""
    geoms = geometries
    if geoms.crs is not None and geoms.crs.is_geographic:
        located = geoms[geoms.notna() & ~geoms.is_empty]
        if len(located):
            geoms = geoms.to_crs(located.estimate_utm_crs())
    keys = np.array([None if t is None or (isinstance(t, float) and t != t) or str(t).strip() == ""
                     else str(t) for t in territory], dtype=object)  # fmt: skip
    ok = (geoms.notna() & ~geoms.is_empty).to_numpy() & np.array([k is not None for k in keys])
    if not ok.any():
        return {}
    arr = geoms.to_numpy()[ok]
    names, assign = np.unique(keys[ok].astype(str), return_inverse=True)
    polygonal = np.isin(shapely.get_type_id(arr), (3, 6))
    if polygonal.all():
        adjacency = polygon_adjacency(arr)
    elif not polygonal.any():
        adjacency = point_adjacency(shapely.get_coordinates(arr), with_cells=False)[0]
    else:
        return {}  # a mix of areas and points has no one adjacency
    counts = count_pieces(assign, adjacency, len(names))
    return {str(n): int(c) for n, c in zip(names, counts)}


def _same_territory_components(a: np.ndarray, mat: sp.csr_matrix) -> tuple[np.ndarray, int]:
    coo = mat.tocoo()
    keep = (a[coo.row] == a[coo.col]) & (a[coo.row] >= 0)
    n = len(a)
    sub = sp.csr_matrix((np.ones(int(keep.sum())), (coo.row[keep], coo.col[keep])), shape=(n, n))
    n_comp, labels = connected_components(sub, directed=False)
    return labels, n_comp


# ----------------------------------------------------------------------------- heuristic


def make_contiguous(
    assign: np.ndarray,
    *,
    adjacency,
    cost: np.ndarray,
    values: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    locks: np.ndarray,
    allowed: np.ndarray,
    current: np.ndarray | None = None,
    budget: int | None = None,
    deadline: float | None = None,
    is_cancelled: CancelCheck | None = None,
    names: Sequence[str] | None = None,
    measures: Sequence[str] | None = None,
    unit_ids: Sequence[str] | None = None,
    strict_deadline: bool = False,
    fallback_deadline: float | None = None,
) -> np.ndarray:
    """Turn a plan into one whose every territory is one piece, within the same hard rules.

    Parameters
    ----------
    assign : (n,) starting territory per unit (e.g. the balanced, non-contiguous plan).
    adjacency : (n, n) sparse matrix or :class:`Adjacency` (connected, e.g. with island links).
    cost : (n, k) cost of each unit in each territory (minimised in total).
    values : (n, m) balanced measures; lo, hi : (k, m) bounds of each territory's totals.
    locks : (n,) territory a unit must stay in (-1 = free); allowed : (n, k) bool pairs.
    current, budget : current territory per unit (-1 = new) and the most units that may move.
    deadline : ``time.perf_counter()`` value after which the local search stops improving.
    names, measures, unit_ids : territory, measure and unit names for messages.
    strict_deadline : nothing goes past ``deadline`` (an optional repair); otherwise the exact
        fallback may run until ``fallback_deadline`` (the caller's own end, e.g. TIME_LIMIT's),
        or without one for at least 5 s.

    Returns
    -------
    (n,) territory index per unit. Raises :class:`InfeasibleError` naming the territory and the
    smallest relaxation it can show when no plan in one piece per territory is found.
    """
    mat = _matrix(adjacency)
    args = (mat, cost, values, lo, hi, locks, allowed, current, budget, deadline, is_cancelled,
            names, measures, unit_ids, strict_deadline, fallback_deadline)  # fmt: skip
    s = _Search(assign, *args)
    best: np.ndarray | None = None
    failure: InfeasibleError | None = None
    starts = [np.asarray(assign, int)]
    if budget is None:  # also from a plan of weighted nearest centres (few pieces to repair)
        starts.append(s.weighted_start())
    for start in starts:
        if (best is not None or strict_deadline) and s._stop():
            break
        s = _Search(start, *args)
        try:
            s.repair()
            s.balance()
            if s.total_violation() > 0:
                s.regrow()
            if s.total_violation() > 0:
                exact = s.exact_fallback()
                if exact is None:
                    s.raise_balance()
                s.load(exact)
            s.fit_budget()
            s.improve()
            s.check()
        except InfeasibleError as err:
            failure = failure or err
            continue
        if best is None or s.objective() < _objective(cost, best) - 1e-9:
            best = s.a.copy()
    if best is None:
        raise failure  # type: ignore[misc]
    return _reassign_rounds(best, args)


def _reassign_rounds(best: np.ndarray, args: tuple) -> np.ndarray:
    """Lower the cost of a plan in one piece each by rounds of the balanced assignment over each
    unit's own and neighbouring territories (the balance traded at every border at once).

    Units the assignment moved that end apart from their new territory go back, and so do those
    that cut a piece of their old one off; then repair, balance and the local search. The better
    plan is kept; a round without gain (``_ROUND_MIN_GAIN``) reaches one unit further next time;
    stops after ``_ROUND_STALLS`` rounds without gain, before a round would pass the deadline, or after
    ``_ROUNDS`` rounds without a deadline.
    """
    from .assignment import NoPlanFoundError, solve_balanced

    mat, cost, values, lo, hi, locks, allowed, current, budget, deadline, is_cancelled = args[:11]
    n, k = np.shape(cost)
    if k < 2:
        return best
    best_obj = first = _objective(cost, best)
    cur = np.full(n, -1) if current is None else np.asarray(current, int)
    allowed = np.asarray(allowed, bool)
    prices, stall, took, rounds = None, 0, 0.0, 0
    for _ in range(_ROUNDS if deadline is None else 10**6):
        t0 = time.perf_counter()
        left = 60.0 if deadline is None else deadline - t0
        if stall >= _ROUND_STALLS or left <= max(took, 1.0):  # (no round cut short)
            break
        check_cancel(is_cancelled)
        near = _reach(best, mat, k, 1 + stall) & allowed
        try:
            res = solve_balanced(cost, values, lo, hi, locks=np.asarray(locks, int), current=cur,
                                 budget=budget, allowed=near, time_limit_s=left, prices=prices,
                                 polish=False, is_cancelled=is_cancelled)  # fmt: skip
        except NoPlanFoundError:
            break
        prices = res.prices
        s = _Search(_put_back(res.assign, best, mat), *args)
        try:
            s.repair()
            s.balance()
            ok = s.total_violation() <= 0
            if ok:
                s.fit_budget()
                s.improve()
                s.check()
        except InfeasibleError:
            ok = False
        logger.debug("Contiguity round: assignment %.3f, in one piece %s (best %.3f).",
                     res.objective, f"{s.objective():.3f}" if ok else "none", best_obj)  # fmt: skip
        gain = best_obj - s.objective() if ok else 0.0
        stall = 0 if gain > _ROUND_MIN_GAIN * abs(best_obj) else stall + 1
        if gain > 1e-9:
            best, best_obj = s.a.copy(), s.objective()
        took = time.perf_counter() - t0
        rounds += 1
    if best_obj < first:
        logger.info("Contiguity: %d round(s) of the balanced assignment over neighbouring "
                    "territories lowered the plan in one piece each from %.3f to %.3f.",
                    rounds, first, best_obj)  # fmt: skip
    return best


def _reach(a: np.ndarray, mat: sp.csr_matrix, k: int, depth: int) -> np.ndarray:
    """(n, k) mask: each unit's territory and those of the units up to ``depth`` links away."""
    n = len(a)
    own = sp.csr_matrix((np.ones(n, np.int32), (np.arange(n), a)), shape=(n, k))
    near = own
    for _ in range(depth):
        near = near + mat.astype(np.int32) @ near
    return near.toarray() > 0


def _put_back(new: np.ndarray, old: np.ndarray, mat: sp.csr_matrix) -> np.ndarray:
    """``new`` with moved units returned to ``old`` (a plan in one piece each) until every
    territory is one piece: moved units apart from their territory's main piece (the one with
    most unmoved units), and moved units whose leaving cut a piece off their old territory.

    Each step returns at least one unit, so it ends (at worst at ``old``).
    """
    new = np.asarray(new, int).copy()
    old = np.asarray(old, int)
    for _ in range(len(new) + 1):
        labels, n_comp = _same_territory_components(new, mat)
        kept = np.bincount(labels, weights=(new == old).astype(float), minlength=n_comp)
        size = np.bincount(labels, minlength=n_comp)
        terr = np.zeros(n_comp, int)
        terr[labels] = new
        order = np.lexsort((-size, -kept, terr))
        main = np.zeros(n_comp, bool)
        main[order[np.r_[True, terr[order][1:] != terr[order][:-1]]]] = True
        apart = ~main[labels]
        if not apart.any():
            break
        moved = apart & (new != old)
        new[moved] = old[moved]
        stay = np.flatnonzero(apart & ~moved)
        if len(stay):
            coo = mat[stay].tocoo()
            w, j = coo.col, new[stay][coo.row]
            cut = w[(old[w] == j) & (new[w] != j)]
            new[cut] = old[cut]
    return new


def _objective(cost: np.ndarray, a: np.ndarray) -> float:
    return float(np.asarray(cost, float)[np.arange(len(a)), a].sum())


class _Search:
    """State of the contiguity search: plan, totals per territory, move count (incremental)."""

    def __init__(self, assign, mat, cost, values, lo, hi, locks, allowed, current, budget,
                 deadline, is_cancelled, names, measures, unit_ids, strict=False,
                 fallback_end=None):  # fmt: skip
        self.cost = np.asarray(cost, float)
        n, k = self.cost.shape
        self.n, self.k = n, k
        v = np.asarray(values, float)
        self.v = v.reshape(n, -1)
        self.lo = np.asarray(lo, float).reshape(k, -1)
        self.hi = np.asarray(hi, float).reshape(k, -1)
        self.locks = np.asarray(locks, int)
        self.allowed = np.asarray(allowed, bool)
        self.current = np.full(n, -1) if current is None else np.asarray(current, int)
        self.budget = budget
        self.deadline = deadline
        self.strict = strict  # make_contiguous(strict_deadline=True): nothing past the deadline
        self.fallback_end = fallback_end  # the exact fallback's own end (None: at least 5 s)
        self.is_cancelled = is_cancelled
        self.names = [f"T{j + 1:02d}" for j in range(k)] if names is None else list(map(str, names))
        m = self.v.shape[1]
        self.measures = ["count"] * m if measures is None else list(map(str, measures))
        self.unit_ids = [str(i) for i in range(n)] if unit_ids is None else list(map(str, unit_ids))
        if mat.shape != (n, n):
            msg = f"adjacency has shape {mat.shape}, expected ({n}, {n})."
            raise InvalidInputError(msg)
        self.mat = mat
        self.nbrs = [mat.indices[mat.indptr[i] : mat.indptr[i + 1]].tolist() for i in range(n)]
        coo = mat.tocoo()
        self.er, self.ec = coo.row.astype(int), coo.col.astype(int)
        target = (self.lo + self.hi) / 2.0
        self.target = target
        self.scale = np.where(np.abs(target) > 1e-12, np.abs(target), 1.0)
        self.lo_e = self.lo - 1e-9 * (1 + np.abs(self.lo))
        self.hi_e = self.hi + 1e-9 * (1 + np.abs(self.hi))
        spread = float(np.ptp(self.cost[np.isfinite(self.cost)])) if self.cost.size else 1.0
        self.big = 10.0 * (spread + 1.0)
        self.ignore_budget = False  # repair and balance first, then fit the budget
        self.load(np.asarray(assign, int).copy())

    def objective(self) -> float:
        return _objective(self.cost, self.a)

    def weighted_start(self, iterations: int = 300) -> np.ndarray:
        """A plan of nearest centres with one additive weight per territory, tuned so that the
        territories' shares even out: spatially coherent, so it has few pieces to repair."""
        share = self.v / np.maximum(self.scale.mean(0), 1e-12)[None, :]
        cost = np.where(self.allowed, self.cost, np.inf)
        locked = self.locks >= 0
        w = np.zeros(self.k)
        finite = self.cost[np.isfinite(self.cost)]
        step = float(np.median(np.abs(finite - np.median(finite)))) if finite.size else 1.0
        best, best_viol = None, math.inf
        for _ in range(iterations):
            a = np.argmin(cost + w[None, :], axis=1)
            a[locked] = self.locks[locked]
            load = np.zeros((self.k, share.shape[1]))
            np.add.at(load, a, share)
            load /= np.maximum(self.target / self.scale.mean(0)[None, :], 1e-12)
            viol = float(np.abs(load - 1.0).max())
            if viol < best_viol:
                best, best_viol = a.copy(), viol
            w += step * (load.mean(1) - 1.0)
            step *= 0.98
        return best

    # -- state
    def load(self, a: np.ndarray) -> None:
        self.a = np.asarray(a, int).copy()
        ok = self.a >= 0
        self.tot = np.zeros((self.k, self.v.shape[1]))
        np.add.at(self.tot, self.a[ok], self.v[ok])
        self.size = np.bincount(self.a[ok], minlength=self.k)
        self.moves = int(((self.current >= 0) & (self.a != self.current)).sum())

    def _set(self, i: int, t: int) -> None:
        s = self.a[i]
        if s >= 0:
            self.tot[s] -= self.v[i]
            self.size[s] -= 1
            if self.current[i] >= 0:
                self.moves += int(self.current[i] == s)
        if t >= 0:
            self.tot[t] += self.v[i]
            self.size[t] += 1
            if self.current[i] >= 0:
                self.moves -= int(self.current[i] == t)
        self.a[i] = t

    def _stop(self) -> bool:
        check_cancel(self.is_cancelled)
        return self.deadline is not None and time.perf_counter() > self.deadline

    def _viol(self, rows: np.ndarray, tot: np.ndarray) -> np.ndarray:
        lo, hi, sc = self.lo_e[rows], self.hi_e[rows], self.scale[rows]
        return ((np.maximum(lo - tot, 0) + np.maximum(tot - hi, 0)) / sc).sum(-1)

    def _within(self, rows: np.ndarray, tot: np.ndarray) -> np.ndarray:
        return ((tot >= self.lo_e[rows]) & (tot <= self.hi_e[rows])).all(-1)

    def _fits(self, s: np.ndarray, t: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Moves of units ``u`` from ``s`` to ``t`` keep the lower bound of s and upper of t."""
        return (self.tot[s] - self.v[u] >= self.lo_e[s]).all(-1) & (
            self.tot[t] + self.v[u] <= self.hi_e[t]
        ).all(-1)

    def total_violation(self) -> float:
        return float(self._viol(np.arange(self.k), self.tot).sum())

    def _budget_ok(self, i: int, t: int, extra: int = 0) -> bool:
        if self.budget is None or self.current[i] < 0 or self.ignore_budget:
            return True
        d = int(self.current[i] == self.a[i]) - int(self.current[i] == t)
        return self.moves + d + extra <= self.budget

    # -- connectivity
    def _removable(self, i: int) -> bool:
        """Unit ``i`` can leave its territory without splitting it (and without emptying it)."""
        s = self.a[i]
        if self.size[s] <= 1:
            return False
        a = self.a
        near = [w for w in self.nbrs[i] if a[w] == s]
        if len(near) <= 1:
            return len(near) == 1
        want = set(near[1:])
        seen = {i, near[0]}
        queue = deque([near[0]])
        while queue and want:
            u = queue.popleft()
            for w in self.nbrs[u]:
                if w not in seen and a[w] == s:
                    seen.add(w)
                    want.discard(w)
                    queue.append(w)
        return not want

    def _connected(self, j: int) -> bool:
        members = np.flatnonzero(self.a == j)
        if len(members) <= 1:
            return True
        seen = {int(members[0])}
        queue = deque([int(members[0])])
        a = self.a
        while queue:
            u = queue.popleft()
            for w in self.nbrs[u]:
                if w not in seen and a[w] == j:
                    seen.add(w)
                    queue.append(w)
        return len(seen) == len(members)

    def _touches(self, i: int, t: int) -> bool:
        a = self.a
        return any(a[w] == t for w in self.nbrs[i])

    # -- phase 1: repair split territories
    def repair(self) -> None:
        for _ in range(4 * self.k + 4):
            labels, n_comp = _same_territory_components(self.a, self.mat)
            ok = self.a >= 0
            terr = np.full(n_comp, -1)
            terr[labels[ok]] = self.a[ok]
            pieces = np.bincount(terr[terr >= 0], minlength=self.k)
            if (pieces <= 1).all() and ok.all():
                return
            joined = False
            for j in np.flatnonzero(pieces > 1):
                comps = np.flatnonzero(terr == j)
                locked = [c for c in comps if ((labels == c) & (self.locks == j)).any()]
                if len(locked) > 1:
                    self._join_locked(int(j), labels, locked)
                    joined = True
                    break
                if locked:
                    main = locked[0]
                else:
                    weight = [self._weight(np.flatnonzero(labels == c), j) for c in comps]
                    main = comps[int(np.argmax(weight))]
                for c in comps:
                    if c != main:
                        for i in np.flatnonzero(labels == c):
                            self._set(int(i), -1)
            if not joined:
                self._fill()
        if (count_pieces(self.a, self.mat, self.k) > 1).any():  # pragma: no cover - defensive
            raise ContiguityError("The plan could not be made contiguous", "set CONTIGUOUS off.")

    def _weight(self, members: np.ndarray, j: int) -> float:
        share = (self.v[members] / self.scale[j]).sum()
        best = self.cost[members, j].min() if len(members) else 0.0
        return float(share + len(members) * 1e-9 - best * 1e-12)

    def _join_locked(self, j: int, labels: np.ndarray, locked: list) -> None:
        """Connect the pieces of territory ``j`` that hold locked units by a path of units."""
        sizes = [int(((labels == c) & (self.locks == j)).sum()) for c in locked]
        main = locked[int(np.argmax(sizes))]
        target = set(np.flatnonzero(labels == main).tolist())
        for c in locked:
            if c == main:
                continue
            start = np.flatnonzero(labels == c).tolist()
            path = self._path(start, target, j)
            if path is None:
                unit = self.unit_ids[int(np.flatnonzero((labels == c) & (self.locks == j))[0])]
                other = self.unit_ids[int(np.flatnonzero((labels == main) & (self.locks == j))[0])]
                finding = (
                    f"{self.names[j]}: locked units {unit} and {other} cannot be joined in one "
                    "piece without crossing units locked to other territories or out of reach "
                    "(REP_MAX_MINUTES)"
                )
                raise ContiguityError(finding, "unlock one of them or set CONTIGUOUS off.")
            for i in path:
                self._set(i, j)
            target.update(path)

    def _path(self, start: list, target: set, j: int) -> list | None:
        """Cheapest chain of free, allowed units from ``start`` to ``target`` (Dijkstra)."""
        dist = dict.fromkeys(start, 0.0)
        prev: dict[int, int] = {}
        heap = [(0.0, u) for u in start]
        heapq.heapify(heap)
        while heap:
            d, u = heapq.heappop(heap)
            if d > dist.get(u, math.inf):
                continue
            for w in self.nbrs[u]:
                if w in target:
                    path = []
                    while u not in start:
                        path.append(u)
                        u = prev[u]
                    return path
                if (self.locks[w] >= 0 and self.locks[w] != j) or not self.allowed[w, j]:
                    continue
                if self.a[w] == j:
                    step = 0.0
                else:
                    step = 1.0 + max(self.cost[w, j] - self.cost[w, max(self.a[w], 0)], 0.0)
                nd = d + step
                if nd < dist.get(w, math.inf):
                    dist[w] = nd
                    prev[w] = u
                    heapq.heappush(heap, (nd, w))
        return None

    def _fill(self) -> None:
        """Give every unassigned unit to a neighbouring territory (region growing by cost)."""
        free = np.flatnonzero(self.a < 0)
        if len(free) == 0:
            return
        heap: list = []
        for i in free.tolist():
            for w in self.nbrs[i]:
                t = int(self.a[w])
                if t >= 0 and self.allowed[i, t]:
                    heap.append((self._fill_key(i, t), i, t))
        heapq.heapify(heap)
        while heap:
            key, i, t = heapq.heappop(heap)
            if self.a[i] >= 0:
                continue
            now = self._fill_key(i, t)
            if now > key + 1e-12:
                heapq.heappush(heap, (now, i, t))
                continue
            self._set(i, t)
            for w in self.nbrs[i]:
                if self.a[w] < 0 and self.allowed[w, t]:
                    heapq.heappush(heap, (self._fill_key(w, t), w, t))
        stuck = np.flatnonzero(self.a < 0)
        if len(stuck):
            ids = [self.unit_ids[i] for i in stuck[:10]]
            finding = f"Units {ids} can join no neighbouring territory within REP_MAX_MINUTES"
            raise ContiguityError(finding, "raise REP_MAX_MINUTES or set CONTIGUOUS off.")

    def _fill_key(self, i: int, t: int) -> float:
        key = float(self.cost[i, t])
        if (self.tot[t] + self.v[i] > self.hi_e[t]).any():
            key += self.big
        if self.budget is not None and self.current[i] >= 0 and self.current[i] != t:
            key += 0.1 * self.big
        return key

    def regrow(self) -> None:
        """Stuck on balance: grow all territories again from their centres and locked units,
        always extending the least filled one, then repair and balance; keep the better plan."""
        old_a, old_viol = self.a.copy(), self.total_violation()
        seeds = np.full(self.k, -1)
        for j in range(self.k):
            pool = np.flatnonzero(self.locks == j)
            if not len(pool):
                pool = np.flatnonzero(self.a == j)
            if not len(pool):
                pool = np.flatnonzero((self.locks < 0) & self.allowed[:, j])
            pool = pool[~np.isin(pool, seeds)]
            if len(pool):
                seeds[j] = pool[np.argmin(self.cost[pool, j])]
        new = np.where(self.locks >= 0, self.locks, -1)
        new[seeds[seeds >= 0]] = np.flatnonzero(seeds >= 0)
        self.load(new)
        frontier: list[list] = [[] for _ in range(self.k)]
        for i in np.flatnonzero(self.a >= 0).tolist():
            t = int(self.a[i])
            for w in self.nbrs[i]:
                if self.a[w] < 0 and self.allowed[w, t]:
                    frontier[t].append((self.cost[w, t], w))
        for f in frontier:
            heapq.heapify(f)
        fill = (self.tot / self.scale).max(1)
        active = [j for j in range(self.k) if frontier[j]]
        while active:
            j = min(active, key=lambda q: (fill[q], q))
            heap = frontier[j]
            while heap and self.a[heap[0][1]] >= 0:
                heapq.heappop(heap)
            if not heap:
                active.remove(j)
                continue
            _, i = heapq.heappop(heap)
            self._set(i, j)
            fill[j] = (self.tot[j] / self.scale[j]).max()
            for w in self.nbrs[i]:
                if self.a[w] < 0 and self.allowed[w, j]:
                    heapq.heappush(heap, (self.cost[w, j], w))
        self._fill()
        self.repair()
        self.balance()
        if self.total_violation() >= old_viol:
            self.load(old_a)

    # -- candidate moves
    def _border_moves(self) -> tuple[np.ndarray, np.ndarray]:
        """Distinct (unit, neighbouring territory) pairs of movable boundary units."""
        a = self.a
        ti = a[self.ec]
        keep = (a[self.er] != ti) & (self.locks[self.er] < 0)
        u, t = self.er[keep], ti[keep]
        ok = self.allowed[u, t]
        u, t = u[ok], t[ok]
        if len(u) == 0:
            return u, t
        key = np.unique(u.astype(np.int64) * self.k + t)
        return (key // self.k).astype(int), (key % self.k).astype(int)

    def _apply_move(self, i: int, t: int) -> bool:
        if self.a[i] == t or self.locks[i] >= 0 or not self._touches(i, t):
            return False
        if not self._budget_ok(i, t) or not self._removable(i):
            return False
        self._set(i, t)
        return True

    # -- phase 2: balance
    def balance(self) -> None:
        self.ignore_budget = True
        try:
            for _ in range(50 * self.k + 100):
                if self.total_violation() <= 0 or self._stop():
                    return
                if self._balance_pass() or self._balance_swaps():
                    continue
                if not self._chain():
                    return
        finally:
            self.ignore_budget = False

    def _balance_swaps(self) -> bool:
        """Swap two boundary units of neighbouring territories when it lowers the violation."""
        viol = self._viol(np.arange(self.k), self.tot)
        pairs = self._pair_candidates()
        best = None
        for (s, t), cand in pairs.items():
            if (t, s) not in pairs or viol[s] + viol[t] <= 0:
                continue
            ci = self._swap_pool(cand, s, t)
            cj = self._swap_pool(pairs[(t, s)], t, s)
            dv = self.v[cj][None, :, :] - self.v[ci][:, None, :]  # s gains w, loses i
            ts = self.tot[s] + dv
            tt = self.tot[t] - dv
            after = self._viol(np.full(ts.shape[:2], s), ts) + self._viol(
                np.full(tt.shape[:2], t), tt
            )
            gain = viol[s] + viol[t] - after
            for p in np.argsort(-gain, axis=None)[:5].tolist():
                x, y = divmod(p, len(cj))
                if gain[x, y] <= 1e-12:
                    break
                if best is None or gain[x, y] > best[0]:
                    best = (float(gain[x, y]), int(ci[x]), int(cj[y]), s, t)
                break
        if best is None:
            return False
        _, i, w, s, t = best
        self._set(i, t)
        self._set(w, s)
        if self._connected(s) and self._connected(t):
            return True
        self._set(w, t)
        self._set(i, s)
        return False

    def _swap_pool(self, cand: np.ndarray, s: int, t: int, size: int = 60) -> np.ndarray:
        """Boundary units of s next to t most worth exchanging: for each measure, those with the
        largest and the smallest values (a swap trades one measure against another)."""
        if len(cand) <= size:
            return cand
        per = max(size // (2 * self.v.shape[1]), 1)
        pick = []
        for mm in range(self.v.shape[1]):
            ratio = self.v[cand, mm] / self.scale[s, mm] - (self.v[cand] / self.scale[s]).mean(1)
            order = np.argsort(ratio, kind="stable")
            pick.extend([order[:per], order[-per:]])
        return cand[np.unique(np.concatenate(pick))]

    def _balance_pass(self) -> bool:
        u, t = self._border_moves()
        if len(u) == 0:
            return False
        s = self.a[u]
        vs, vt = self.tot[s], self.tot[t]
        dv = (self._viol(s, vs - self.v[u]) - self._viol(s, vs)
              + self._viol(t, vt + self.v[u]) - self._viol(t, vt))  # fmt: skip
        dc = self.cost[u, t] - self.cost[u, s]
        good = np.flatnonzero(dv < -1e-12)
        if len(good) == 0:
            return False
        order = good[np.lexsort((dc[good], dv[good]))]
        applied = 0
        for c in order.tolist():
            i, tt = int(u[c]), int(t[c])
            ss = self.a[i]
            if ss != s[c]:
                continue
            rows = np.array([ss, tt])
            before = self._viol(rows, self.tot[rows]).sum()
            after = self._viol(rows, np.stack([self.tot[ss] - self.v[i], self.tot[tt] + self.v[i]]))
            if after.sum() >= before - 1e-12:
                continue
            if self._apply_move(i, tt):
                applied += 1
        return applied > 0

    def _chain(self) -> bool:
        """Ejection chain: move one unit along each step of a path of territories (BFS)."""
        rows = np.arange(self.k)
        viol = self._viol(rows, self.tot)
        pairs = self._pair_candidates()
        for j in np.argsort(-viol).tolist():
            if viol[j] <= 0:
                break
            push = bool((self.tot[j] > self.hi_e[j]).any())
            if self._chain_from(j, push, pairs):
                return True
        return False

    def _pair_candidates(self) -> dict:
        u, t = self._border_moves()
        s = self.a[u]
        order = np.lexsort((u, t, s))
        u, t, s = u[order], t[order], s[order]
        out: dict = {}
        if len(u) == 0:
            return out
        cut = np.flatnonzero((np.diff(s) != 0) | (np.diff(t) != 0)) + 1
        for grp in np.split(np.arange(len(u)), cut):
            out[(int(s[grp[0]]), int(t[grp[0]]))] = u[grp]
        return out

    def _chain_from(self, j: int, push: bool, pairs: dict) -> bool:
        """BFS over territories from ``j``; apply the first chain that lowers the violation."""
        nb: dict[int, list[int]] = {}
        for s, t in pairs:
            if push:
                nb.setdefault(s, []).append(t)
            else:
                nb.setdefault(t, []).append(s)
        # state: chain of (unit, from, to) moves; territory totals after the chain
        frontier = [(j, [])]
        visited = {j}
        base = self.total_violation()
        for _depth in range(min(self.k, 8)):
            nxt = []
            for x, chain in frontier:
                for y in nb.get(x, []):
                    if y in visited:
                        continue
                    src, dst = (x, y) if push else (y, x)
                    cand = pairs.get((src, dst))
                    if cand is None:
                        continue
                    step = self._best_step(chain, cand, src, dst)
                    if step is None:
                        continue
                    new = [*chain, step]
                    visited.add(y)
                    if self._try_chain(new, base):
                        return True
                    nxt.append((y, new))
            if not nxt:
                return False
            frontier = nxt
        return False

    def _chain_totals(self, chain: list) -> dict:
        tot = {}
        for i, s, t in chain:
            for r in (s, t):
                if r not in tot:
                    tot[r] = self.tot[r].copy()
            tot[s] -= self.v[i]
            tot[t] += self.v[i]
        return tot

    def _best_step(self, chain, cand, src, dst):
        moved = {c[0] for c in chain}
        cand = np.array([c for c in cand.tolist() if c not in moved], int)
        if len(cand) == 0:
            return None
        tot = self._chain_totals(chain)
        ts = tot.get(src, self.tot[src])
        td = tot.get(dst, self.tot[dst])
        rs = np.full(len(cand), src)
        rd = np.full(len(cand), dst)
        score = self._viol(rs, ts - self.v[cand]) + self._viol(rd, td + self.v[cand])
        score = score + 1e-9 * (self.cost[cand, dst] - self.cost[cand, src]) / self.big
        for c in np.argsort(score, kind="stable")[:6].tolist():
            i = int(cand[c])
            if self._removable(i):
                return (i, src, dst)
        return None

    def _try_chain(self, chain, base) -> bool:
        extra = 0
        for i, _s, t in chain:
            if not self._budget_ok(i, t, extra):
                return False
            extra += int(self.current[i] == self.a[i]) - int(self.current[i] == t)
        tot = self._chain_totals(chain)
        rows = np.array(list(tot))
        after = self.total_violation() - self._viol(rows, self.tot[rows]).sum()
        after += self._viol(rows, np.stack([tot[r] for r in rows])).sum()
        if after >= base - 1e-12:
            return False
        old = [(i, self.a[i]) for i, _s, _t in chain]
        for i, _s, t in chain:
            self._set(i, t)
        if all(self._connected(int(r)) for r in rows):
            return True
        for i, s in reversed(old):
            self._set(i, s)
        return False

    # -- phase 3: cost
    def improve(self) -> None:
        for _ in range(200):
            if self._stop():
                return
            moved = self._improve_pass()
            if not moved and not self._swap_pass():
                return

    def _improve_pass(self) -> bool:
        u, t = self._border_moves()
        if len(u) == 0:
            return False
        s = self.a[u]
        dc = self.cost[u, t] - self.cost[u, s]
        fit = self._fits(s, t, u)
        good = np.flatnonzero((dc < -1e-9) & fit)
        applied = 0
        for c in good[np.argsort(dc[good], kind="stable")].tolist():
            i, tt = int(u[c]), int(t[c])
            ss = self.a[i]
            if ss != s[c]:
                continue
            if (self.tot[ss] - self.v[i] < self.lo_e[ss]).any():
                continue
            if (self.tot[tt] + self.v[i] > self.hi_e[tt]).any():
                continue
            if self._apply_move(i, tt):
                applied += 1
        return applied > 0

    def _swap_pass(self) -> bool:
        """Swap two boundary units of neighbouring territories when it saves cost."""
        pairs = self._pair_candidates()
        applied = 0
        for (s, t), cand in pairs.items():
            if s > t or (t, s) not in pairs:
                continue
            back = pairs[(t, s)]
            ci = cand[self.a[cand] == s]
            cj = back[self.a[back] == t]
            if len(ci) == 0 or len(cj) == 0:
                continue
            di = self.cost[ci, t] - self.cost[ci, s]
            dj = self.cost[cj, s] - self.cost[cj, t]
            ci, di = ci[np.argsort(di)[:8]], np.sort(di)[:8]
            cj, dj = cj[np.argsort(dj)[:8]], np.sort(dj)[:8]
            total = di[:, None] + dj[None, :]
            for p in np.argsort(total, axis=None).tolist():
                x, y = divmod(p, len(cj))
                if total[x, y] >= -1e-9:
                    break
                i, w = int(ci[x]), int(cj[y])
                if self.a[i] != s or self.a[w] != t:
                    continue
                dv = self.v[w] - self.v[i]
                rows = np.array([s, t])
                if not self._within(rows, self.tot[rows] + np.stack([dv, -dv])).all():
                    continue
                if self.budget is not None:
                    extra = int(self.current[i] == s) - int(self.current[i] == t)
                    if not self._budget_ok(w, s, extra):
                        continue
                self._set(i, t)
                self._set(w, s)
                if self._connected(s) and self._connected(t):
                    applied += 1
                    break
                self._set(w, t)
                self._set(i, s)
        return applied > 0

    # -- phase 4: budget
    def fit_budget(self) -> None:
        if self.budget is None or self.moves <= self.budget:
            return
        for _ in range(100):
            if self.moves <= self.budget:
                return
            moved = self.a != self.current
            cand = np.flatnonzero(moved & (self.current >= 0) & (self.locks < 0))
            back = self.current[cand]
            ok = self.allowed[cand, back]
            cand, back = cand[ok], back[ok]
            s = self.a[cand]
            fit = self._fits(s, back, cand)
            cand, back = cand[fit], back[fit]
            order = np.argsort(self.cost[cand, back] - self.cost[cand, self.a[cand]], kind="stable")
            applied = 0
            for c in order.tolist():
                if self.moves <= self.budget:
                    break
                i, t = int(cand[c]), int(back[c])
                ss = self.a[i]
                if (self.tot[ss] - self.v[i] < self.lo_e[ss]).any():
                    continue
                if (self.tot[t] + self.v[i] > self.hi_e[t]).any():
                    continue
                if self._apply_move(i, t):
                    applied += 1
            if not applied:
                break
        if self.moves > self.budget:
            pct = 100.0 * self.moves / max(int((self.current >= 0).sum()), 1)
            finding = (
                f"The search kept every territory in one piece only with {self.moves} moves, "
                f"more than MAX_MOVES allows ({self.budget})"
            )
            raise ContiguityError(
                finding,
                f"allow MAX_MOVES of {math.ceil(pct * 10) / 10:.1f}% or set CONTIGUOUS off.",
            )

    # -- failure: the exact model or the smallest relaxation
    def exact_fallback(self) -> np.ndarray | None:
        if self.n * self.k > _EXACT_FALLBACK_PAIRS or self.budget is not None:
            return None
        roots = np.full(self.k, -1)
        for j in range(self.k):
            locked = np.flatnonzero(self.locks == j)
            members = np.flatnonzero(self.a == j) if not len(locked) else locked
            if len(members) == 0:
                return None
            roots[j] = members[np.argmin(self.cost[members, j])]
        left, now = 20.0, time.perf_counter()
        end = self.deadline if self.strict else self.fallback_end
        if end is not None:  # nothing past the caller's end
            left = min(left, end - now)
            if left < 1.0:
                return None
        elif self.deadline is not None:
            left = max(5.0, min(left, self.deadline - now))
        problem = ContiguousProblem.of(self.cost, self.v, self.lo, self.hi, adjacency=self.mat,
                                       locks=self.locks, allowed=self.allowed)  # fmt: skip
        res = contiguous_milp(problem, roots=roots, time_limit_s=left)
        if res is None:
            return None
        logger.info("Contiguity: the local search could not balance the plan; the exact model "
                    "found one (objective %.3f).", res[1])  # fmt: skip
        return res[0]

    def raise_balance(self) -> None:
        dev = np.abs(self.tot - self.target) / self.scale * 100.0  # (k, m) % of target
        band = (self.hi - self.target) / self.scale * 100.0
        over = (self.tot > self.hi_e) | (self.tot < self.lo_e)
        ratio = np.where(over, dev / np.maximum(band, 1e-9), 0.0)
        j, mm = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
        tmin = float(band.min()) if band.size else 0.0
        need = float(dev[j, mm]) if band[j, mm] <= 1e-9 else float(ratio[j, mm]) * tmin
        need = math.ceil(need * 10 + 1e-9) / 10
        under = self.tot[j, mm] < self.target[j, mm]
        share = 100.0 - band[j, mm] if under else 100.0 + band[j, mm]
        verb = "reach" if under else "stay below"
        finding = (
            f"{self.names[j]} cannot {verb} {share:.1f}% of its share of {self.measures[mm]} in "
            f"one piece (best plan found: {100.0 * self.tot[j, mm] / self.scale[j, mm]:.1f}%)"
        )
        raise ContiguityError(finding, f"allow TOLERANCE of {need:.1f}% or set CONTIGUOUS off.")

    def check(self) -> None:
        pieces = count_pieces(self.a, self.mat, self.k)
        if (pieces > 1).any():  # pragma: no cover - defensive
            j = int(np.argmax(pieces))
            finding = f"{self.names[j]} is still in {pieces[j]} pieces"
            raise ContiguityError(finding, "set CONTIGUOUS off.")


# ----------------------------------------------------------------------------- exact model


@dataclass
class ExactPlan:
    """A plan of :func:`contiguous_exact`: assignment, objective, the solver's proven bound of the
    rooted model, and whether it proved the plan optimal."""

    assign: np.ndarray
    objective: float
    bound: float
    optimal: bool


@dataclass(frozen=True, eq=False)
class ContiguousProblem:
    """What every exact contiguous model here solves, normalised once (:meth:`of`): the units'
    cost for each territory, their measures and the territories' bands, which units touch, the
    locks, the allowed pairs (a locked unit allowed in its lock's territory only) and the moves
    budget with today's plan (both None unless both are given). A :class:`.model.TerritoryModel`
    builds it (:meth:`.model.TerritoryModel.contiguous_problem`) for the solvers here, in
    :mod:`.branch_cut` and in the worker process beside the plan search."""

    cost: np.ndarray  # (n, k)
    values: np.ndarray  # (n, m)
    lo: np.ndarray  # (k, m) lowest territory totals
    hi: np.ndarray  # (k, m) highest territory totals
    adjacency: sp.csr_matrix  # (n, n), 1 where two units touch
    locks: np.ndarray  # (n,) the territory a unit is locked to, -1 = free
    allowed: np.ndarray  # (n, k) bool
    current: np.ndarray | None = None  # (n,) today's territory (-1 = none), with ``budget``
    budget: int | None = None  # the most units with a territory today that may change it

    @classmethod
    def of(
        cls,
        cost: np.ndarray,
        values: np.ndarray,
        lo: np.ndarray,
        hi: np.ndarray,
        *,
        adjacency,
        locks: np.ndarray | None = None,
        allowed: np.ndarray | None = None,
        current: np.ndarray | None = None,
        budget: int | None = None,
    ) -> ContiguousProblem:
        """The problem of these arrays (``adjacency``: a sparse matrix or :class:`Adjacency`;
        no ``locks``: none; no ``allowed``: every pair). The arguments are not changed."""
        cost = np.asarray(cost, float)
        n, k = cost.shape
        locks = np.full(n, -1) if locks is None else np.asarray(locks, int)
        allowed = np.ones((n, k), bool) if allowed is None else np.asarray(allowed, bool).copy()
        for i in np.flatnonzero(locks >= 0):
            keep = allowed[i, locks[i]]
            allowed[i] = False
            allowed[i, locks[i]] = keep
        cur = None if budget is None or current is None else np.asarray(current, int)
        bands = [np.asarray(b, float).reshape(k, -1) for b in (lo, hi)]
        return cls(cost, np.asarray(values, float).reshape(n, -1), *bands,
                   _binary(_matrix(adjacency)), locks, allowed, cur,
                   None if cur is None else int(budget))  # fmt: skip

    @cached_property
    def pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The models' columns (:func:`_pairs`): allowed pairs' units and territories, and each
        pair's column (-1 where not allowed)."""
        return _pairs(self.allowed)

    def rows(self, nv: int | None = None) -> tuple[list, list, list]:
        """The rows every exact model has over its pair columns (the first ``len(pr)`` of ``nv``,
        default all), from the engine's one constraint builder
        (:func:`.constraints.pair_constraints`): each unit in one territory, each territory
        within its bands and, with a budget, the moves budget (units staying where they are now:
        all but ``budget`` of those with a territory now). (blocks, lower, upper), for the
        caller to add its own rows to."""
        pr, pc, _ = self.pairs
        n, k = self.cost.shape
        rows = pair_constraints(self.values, pr, pc, n_rows=n, k=k, current=self.current)
        stay = None if self.current is None else float((self.current >= 0).sum() - self.budget)
        a_mat, lower, upper = rows.rows_within(self.lo, self.hi, stay)
        if nv is not None and nv > len(pr):  # the caller's own columns (flows, roots) come after
            a_mat = sp.hstack([a_mat, sp.csr_matrix((a_mat.shape[0], nv - len(pr)))]).tocsr()
        return [a_mat], [lower], [upper]

    def objective(self, assign: np.ndarray) -> float:
        """The cost of plan ``assign`` (a territory per unit), rules not checked."""
        return float(self.cost[np.arange(len(self.cost)), np.asarray(assign, int)].sum())

    def fits(self, assign) -> bool:
        """Whether plan ``assign`` (a territory per unit) uses allowed pairs only, meets every
        territory's bands and the moves budget and has each territory in one piece."""
        assign = np.asarray(assign)
        n, k = self.cost.shape
        if assign.shape != (n,) or (assign < 0).any() or (assign >= k).any():
            return False
        if (
            self.current is not None
            and int(((self.current >= 0) & (self.current != assign)).sum()) > self.budget
        ):
            return False
        if not self.allowed[np.arange(n), assign].all():
            return False
        load = totals(self.values, assign, k)
        slack = 1e-9 * (1.0 + np.abs(self.hi))
        if ((load < self.lo - slack) | (load > self.hi + slack)).any():
            return False
        return bool((count_pieces(assign, self.adjacency, k) == 1).all())

    def plan_cost(self, assign) -> float:
        """The cost of plan ``assign`` when it keeps every rule (:meth:`fits`), else inf (also
        for None)."""
        if assign is None or not self.fits(assign):
            return np.inf
        return self.objective(assign)

    def restricted(self, rows: np.ndarray, group: np.ndarray, a: np.ndarray) -> ContiguousProblem:
        """The problem of units ``rows`` among territories ``group`` alone, every other unit
        staying as in plan ``a``: their bands, locks and pairs, and what is left of the moves
        budget (units outside moved already, units of ``rows`` whose territory today is not in
        ``group`` moved whatever happens)."""
        col = np.full(self.cost.shape[1], -1)
        col[group] = np.arange(len(group))
        sub_cur, sub_budget = None, None
        if self.current is not None:
            cur = self.current
            outside = np.ones(len(a), bool)
            outside[rows] = False
            moved_outside = int(((cur >= 0) & (cur != a) & outside).sum())
            sub_cur = np.where(cur[rows] >= 0, col[np.maximum(cur[rows], 0)], -1)
            elsewhere = int(((cur[rows] >= 0) & (sub_cur < 0)).sum())
            sub_budget = self.budget - moved_outside - elsewhere
        sub_locks = np.where(self.locks[rows] >= 0, col[np.maximum(self.locks[rows], 0)], -1)
        return ContiguousProblem(
            self.cost[np.ix_(rows, group)], self.values[rows], self.lo[group], self.hi[group],
            self.adjacency[rows][:, rows], sub_locks, self.allowed[np.ix_(rows, group)],
            sub_cur, sub_budget,
        )  # fmt: skip


def _pairs(allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The exact models' columns: the allowed (unit, territory) pairs as rows and territories,
    and each pair's column (-1 where not allowed)."""
    pr, pc = np.nonzero(allowed)
    pid = np.full(allowed.shape, -1)
    pid[pr, pc] = np.arange(len(pr))
    return pr, pc, pid


def contiguous_exact(
    problem: ContiguousProblem,
    *,
    roots: np.ndarray,
    start: np.ndarray | None = None,
    time_limit_s: float = 60.0,
) -> ExactPlan | None:
    """Exact contiguous plan: assignment MILP plus a single-commodity flow from each root.

    Each territory j ships one unit of flow from its root ``roots[j]`` to every other unit in
    it, along arcs between units of j only, so every territory is connected (Shirabe 2005).
    Solved by HiGHS (about twice as fast as CBC on it): through ``highspy`` with ``start`` as
    the first plan when it is installed, otherwise through ``scipy.optimize.milp``.

    Parameters
    ----------
    problem : the model (:class:`ContiguousProblem`).
    roots : (k,) unit index that must belong to each territory.
    start : (n,) a plan within every rule, each territory one piece holding its root (or None).
    time_limit_s : solver time limit.

    Returns
    -------
    :class:`ExactPlan` of the best plan found, or None when there is none (infeasible, or
    nothing found within the time limit). ``bound`` holds for plans whose roots are in place.
    """
    from scipy.optimize import Bounds, LinearConstraint, milp

    cost, allowed = problem.cost, problem.allowed
    n, k = cost.shape
    roots = np.asarray(roots, int)
    if not allowed[roots, np.arange(k)].all() or len(set(roots.tolist())) < k:
        return None
    if not allowed.any(1).all():
        return None
    pr, pc, pid = problem.pairs
    p = len(pr)
    # arcs (u -> w) inside territory j: both pairs allowed, never into j's root
    mat = problem.adjacency.tocoo()
    off = mat.row != mat.col
    u_, w_ = np.repeat(mat.row[off], k), np.repeat(mat.col[off], k)
    j_ = np.tile(np.arange(k), int(off.sum()))
    ok = (pid[u_, j_] >= 0) & (pid[w_, j_] >= 0) & (w_ != roots[j_])
    u_, w_, j_ = u_[ok], w_[ok], j_[ok]
    a = len(u_)
    nv = p + a
    big = float(n - k + 1)
    fidx = p + np.arange(a)
    blocks, lbs, ubs = problem.rows(nv)
    # flow only into units of the territory: f - big * x_w <= 0
    r = np.arange(a)
    blocks.append(sp.csr_matrix(
        (np.concatenate([np.ones(a), -big * np.ones(a)]),
         (np.concatenate([r, r]), np.concatenate([fidx, pid[w_, j_]]))), shape=(a, nv)))  # fmt: skip
    lbs.append(np.full(a, -np.inf))
    ubs.append(np.zeros(a))
    # conservation at every non-root pair: inflow - outflow - x = 0
    nonroot = pr != roots[pc]
    row_of_pair = np.cumsum(nonroot) - 1
    q = int(nonroot.sum())
    has_in = nonroot[pid[w_, j_]]
    has_out = nonroot[pid[u_, j_]]
    ri = np.concatenate([row_of_pair[pid[w_, j_]][has_in], row_of_pair[pid[u_, j_]][has_out],
                         row_of_pair[nonroot]])  # fmt: skip
    ci = np.concatenate([fidx[has_in], fidx[has_out], np.flatnonzero(nonroot)])
    vi = np.concatenate([np.ones(int(has_in.sum())), -np.ones(int(has_out.sum())), -np.ones(q)])
    blocks.append(sp.csr_matrix((vi, (ri, ci)), shape=(q, nv)))
    lbs.append(np.zeros(q))
    ubs.append(np.zeros(q))
    lb = np.zeros(nv)
    ub = np.concatenate([np.ones(p), np.full(a, big)])
    lb[pid[roots, np.arange(k)]] = 1.0
    c = np.concatenate([cost[pr, pc], np.zeros(a)])
    integrality = np.concatenate([np.ones(p), np.zeros(a)])
    a_mat = sp.vstack(blocks).tocsr()
    row_lo, row_hi = np.concatenate(lbs), np.concatenate(ubs)
    x0 = None
    if start is not None:
        x0 = _flow_start(np.asarray(start, int), pid, roots, u_, w_, j_, nv, p, mat)
    res = highs_milp(c, integrality, lb, ub, a_mat, row_lo, row_hi, x0, time_limit_s)
    if res is not None:
        return _exact_plan(res[0], res[1], res[2], pr, pc, p, n, cost)
    res = milp(c, integrality=integrality, bounds=Bounds(lb, ub),
               constraints=LinearConstraint(a_mat, row_lo, row_hi),
               options={"time_limit": max(float(time_limit_s), 0.1), "disp": False})  # fmt: skip
    return _exact_plan(res.x, getattr(res, "mip_dual_bound", None), res.status == 0, pr, pc, p,
                       n, cost)  # fmt: skip


def _exact_plan(x, bound, optimal: bool, pr, pc, p: int, n: int, cost) -> ExactPlan | None:
    if x is None:
        return None
    assign = np.full(n, -1)
    pick = np.asarray(x)[:p] > 0.5
    assign[pr[pick]] = pc[pick]
    if (assign < 0).any():  # pragma: no cover - solver returned an incomplete solution
        return None
    objective = float(cost[np.arange(n), assign].sum())
    bound = objective if optimal or bound is None or not np.isfinite(bound) else bound
    return ExactPlan(assign, objective, min(float(bound), objective), bool(optimal))


def _flow_start(start, pid, roots, u_, w_, j_, nv: int, p: int, mat) -> np.ndarray | None:
    """The MILP's variables for a plan: x, and on a BFS tree of each territory from its root the
    flow each arc carries (the units beyond it). None when the plan does not fit the model."""
    n, k = pid.shape
    if (
        (start < 0).any()
        or (pid[np.arange(n), start] < 0).any()
        or (start[roots] != np.arange(k)).any()
    ):
        return None
    x = np.zeros(nv)
    x[pid[np.arange(n), start]] = 1.0
    csr = sp.csr_matrix(mat)
    arc = {(int(u), int(w), int(j)): p + q for q, (u, w, j) in enumerate(zip(u_, w_, j_))}
    for j in range(k):
        parent, order, queue = {int(roots[j]): -1}, [], deque([int(roots[j])])
        while queue:
            v = queue.popleft()
            order.append(v)
            for w in csr.indices[csr.indptr[v] : csr.indptr[v + 1]].tolist():
                if start[w] == j and w not in parent:
                    parent[w] = v
                    queue.append(w)
        if len(order) != int((start == j).sum()):
            return None  # not one piece
        below = dict.fromkeys(order, 1.0)
        for v in reversed(order[1:]):
            below[parent[v]] += below[v]
            q = arc.get((parent[v], v, j))
            if q is None:
                return None
            x[q] = below[v]
    return x


def _stop_at(h, deadline: float, stop: Callable[[], bool] | None = None) -> None:
    """Interrupt a highspy MIP at ``deadline`` (``time.perf_counter()``): its own time limit
    can run seconds over (an LP at a node is not cut short); also once ``stop()`` says so
    (asked at most every half second)."""
    asked = [time.perf_counter()]

    def interrupt(event) -> None:
        event.interrupt(False)  # highspy keeps the flag from an interrupted run to the next
        now = time.perf_counter()
        if now > deadline:
            event.interrupt()
        elif stop is not None and now - asked[0] > 0.5:
            asked[0] = now
            if stop():
                event.interrupt()

    h.cbMipInterrupt += interrupt


def highs_milp(c: np.ndarray, integrality: np.ndarray, lb: np.ndarray, ub: np.ndarray, a_mat,
               row_lo: np.ndarray, row_hi: np.ndarray, x0: np.ndarray | None,
               time_limit_s: float, stop: Callable[[], bool] | None = None,
               ) -> tuple[np.ndarray | None, float, bool] | None:  # fmt: skip
    """Solve the MILP min c x, row_lo <= A x <= row_hi, lb <= x <= ub (``integrality`` > 0:
    integer) with highspy, starting from ``x0`` and interrupted at ``time_limit_s`` or when
    ``stop()`` says so: (x or None, dual bound, optimal), or None when highspy is not
    installed. The engine's one MILP
    call through highspy (the exact contiguous models and ``TerritoryModel.solve_on_pairs``)."""
    try:
        import highspy
    except ImportError:
        return None
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("time_limit", max(float(time_limit_s), 0.1))
    _stop_at(h, time.perf_counter() + max(float(time_limit_s), 0.1), stop)
    nv = len(c)
    h.addVars(nv, lb, ub)
    idx = np.arange(nv, dtype=np.int32)
    h.changeColsCost(nv, idx, c)
    kinds = np.where(integrality > 0, highspy.HighsVarType.kInteger,
                     highspy.HighsVarType.kContinuous)  # fmt: skip
    h.changeColsIntegrality(nv, idx, np.array([int(t) for t in kinds], dtype=np.uint8))
    a_mat = sp.csr_matrix(a_mat)
    h.addRows(a_mat.shape[0], row_lo, row_hi, a_mat.nnz, a_mat.indptr.astype(np.int32),
              a_mat.indices.astype(np.int32), a_mat.data)  # fmt: skip
    if x0 is not None:
        sol = highspy.HighsSolution()
        sol.col_value = list(x0)
        h.setSolution(sol)
    h.run()
    status = h.getModelStatus()
    info = h.getInfo()
    has = info.primal_solution_status == 2  # feasible
    x = np.asarray(h.getSolution().col_value) if has else None
    return x, float(info.mip_dual_bound), status == highspy.HighsModelStatus.kOptimal


def contiguous_milp(
    problem: ContiguousProblem, *, roots: np.ndarray, time_limit_s: float = 60.0
) -> tuple[np.ndarray, float] | None:
    """(assign, objective) of :func:`contiguous_exact` (None when it finds no plan)."""
    res = contiguous_exact(problem, roots=roots, time_limit_s=time_limit_s)
    return None if res is None else (res.assign, res.objective)


def ordered_plan(
    problem: ContiguousProblem,
    *,
    start: np.ndarray | None = None,
    time_limit_s: float = 20.0,
    stop: Callable[[], bool] | None = None,
) -> np.ndarray | None:
    """A plan in one piece per territory from an ordered restriction of the contiguous model
    (HiGHS MILP over all territories at once), or None when it finds none in ``time_limit_s``.

    Each territory has a root, its cheapest unit; every other unit in it has a neighbour in it
    that is cheaper for the territory (cost as the order: the distance to the rep's home).
    Following cheaper neighbours from any unit ends at the root, so each territory is one piece
    (the shortest-path ordering of Validi, Buchanan and Lykhovyd's districting models, with a
    free root). It leaves out some plans in one piece, so its bound is no bound of the problem,
    but it re-draws every territory at once: where re-solving a few neighbouring territories at
    a time is stuck it finds other shapes. ``start`` (a plan in one piece meeting every hard
    constraint) is its first plan when it has the ordered form, so the plan returned is then no
    worse than ``start``.
    """
    cost, allowed, mat = problem.cost, problem.allowed, problem.adjacency
    n, k = cost.shape
    if not allowed.any(1).all() or not allowed.any(0).all():
        return None
    pr, pc, pid = problem.pairs
    p = len(pr)
    rank = np.empty((n, k), int)  # a unit's place in its territory's order (cost, then index)
    for t in range(k):
        rank[np.lexsort((np.arange(n), cost[:, t])), t] = np.arange(n)
    blocks, lbs, ubs = problem.rows(2 * p)
    x_, r_ = np.arange(p), p + np.arange(p)

    def rows_of(r, c, d, low, high) -> None:
        blocks.append(sp.csr_matrix((np.asarray(d, float), (r, c)), shape=(len(low), 2 * p)))
        lbs.append(np.asarray(low, float))
        ubs.append(np.asarray(high, float))

    at_most_0 = (np.full(p, -np.inf), np.zeros(p))
    rows_of(pc, r_, np.ones(p), np.ones(k), np.ones(k))  # one root per territory
    rows_of(np.r_[x_, x_], np.r_[r_, x_], np.r_[np.ones(p), -np.ones(p)],
            *at_most_0)  # a root is in its territory  # fmt: skip
    coo = mat.tocoo()
    er, ec, ed = [x_, x_], [x_, r_], [np.ones(p), -np.ones(p)]  # a cheaper neighbour, or root
    for t in range(k):
        a, b = coo.row, coo.col
        keep = (pid[a, t] >= 0) & (pid[b, t] >= 0) & (rank[b, t] < rank[a, t])
        er.append(pid[a[keep], t])
        ec.append(pid[b[keep], t])
        ed.append(-np.ones(int(keep.sum())))
    rows_of(np.concatenate(er), np.concatenate(ec), np.concatenate(ed), *at_most_0)
    er, ec, ed = [], [], []  # the root is the territory's cheapest unit: x_it <= roots to i
    for t in range(k):
        units = np.flatnonzero(allowed[:, t])
        units = units[np.argsort(rank[units, t])]
        below, upto = np.tril_indices(len(units))
        er += [pid[units, t], pid[units[below], t]]
        ec += [pid[units, t], p + pid[units[upto], t]]
        ed += [np.ones(len(units)), -np.ones(len(below))]
    rows_of(np.concatenate(er), np.concatenate(ec), np.concatenate(ed), *at_most_0)
    a_mat = sp.vstack(blocks).tocsr()
    x0 = None if start is None else _ordered_start(np.asarray(start, int), rank, pid, mat, k)
    out = highs_milp(np.r_[cost[pr, pc], np.zeros(p)], np.ones(2 * p), np.zeros(2 * p),
                 np.ones(2 * p), a_mat, np.concatenate(lbs), np.concatenate(ubs), x0,
                 time_limit_s, stop)  # fmt: skip
    if out is None or out[0] is None:
        return None
    pick = out[0][:p] > 0.5
    assign = np.full(n, -1)
    assign[pr[pick]] = pc[pick]
    if (assign < 0).any() or not (count_pieces(assign, mat, k) == 1).all():
        return None
    return assign


def _ordered_start(start, rank, pid, mat: sp.csr_matrix, k: int) -> np.ndarray | None:
    """``start`` as values of :func:`ordered_plan`'s variables (units, then roots), or None
    when some unit of it has no cheaper neighbour in its territory and is not its root."""
    n = len(start)
    if (start < 0).any() or (pid[np.arange(n), start] < 0).any():
        return None
    p = int(pid.max()) + 1
    x0 = np.zeros(2 * p)
    x0[pid[np.arange(n), start]] = 1.0
    for t in range(k):
        members = np.flatnonzero(start == t)
        if not len(members):
            return None
        root = members[np.argmin(rank[members, t])]
        x0[p + pid[root, t]] = 1.0
        for i in members:
            nbrs = mat.indices[mat.indptr[i] : mat.indptr[i + 1]]
            if i != root and not ((start[nbrs] == t) & (rank[nbrs, t] < rank[i, t])).any():
                return None
    return x0


ROOT_CUT_SHARE = 0.15  # of contiguous_cuts' time, at most, for the LP rounds of size cuts
CUT_TARGET_GAP = 0.0099  # the cut loop first proves plans this close to optimal (goal: 1 %)
TARGET_ROUND_GAP = 0.05  # ... in rounds whose MIP may stop this far from its own optimum,
LOOSE_WITHIN = 0.05  # ... once the bound is this close to the best plan,
LOOSE_ROUNDS = 4  # ... at most this many in a row (then an exact one raises the bound)
BORDER_SOLVE_S = 15.0  # the neighbourhood of every border at once gets at most this long,
BORDER_SHARE = 0.3  # ... and at most this share of the time the neighbourhoods have left


def _root_size_cuts(h, sizes: _SizeCuts, p: int, pr, pc, n: int, k: int,
                    until: float) -> tuple[int, float]:  # fmt: skip
    """Size cuts for every unit alone, then rounds of the LP relaxation of ``h``
    (``solve_relaxation``), each adding the size cuts its fractional plan violates, until none
    is or ``until`` (``time.perf_counter()``); the cuts slack at the last LP are then taken out
    again (and may come back from a plan's pieces): they slow every MILP round and bind little.
    Returns how many cuts stay and the last LP solved to optimality's value (a bound of the
    problem: the relaxation of a relaxation; -inf when none was)."""
    import highspy

    first = h.getNumRow()
    added = sizes.singletons()
    _add_cut_rows(h, added)
    bound, x = -np.inf, None
    h.setOptionValue("solve_relaxation", True)
    try:
        while time.perf_counter() < until:
            h.setOptionValue("time_limit", max(until - time.perf_counter(), 0.01))
            h.run()
            if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
                break
            bound = float(h.getInfo().objective_function_value)
            x = np.asarray(h.getSolution().col_value)[:p]
            frac = np.zeros((n, k))
            frac[pr, pc] = x
            new = sizes.from_fractional(frac)
            if not new:
                break
            _add_cut_rows(h, new)
            added += new
    finally:
        h.setOptionValue("solve_relaxation", False)
    if x is None:
        return len(added), bound
    slack = np.array([float(coef @ x[cols]) < -1e-7 for _, cols, coef in added], bool)
    drop = np.flatnonzero(slack)
    if len(drop):
        h.deleteRows(len(drop), (drop + first).astype(np.int32))
        for q in drop:
            sizes.seen.discard(added[q][0])
    return len(added) - len(drop), bound


@dataclass
class CutPlan:
    """A result of :func:`contiguous_cuts`: a proven lower bound of the contiguous problem, the
    best plan in one piece per territory it knows (or None), and whether that plan is optimal."""

    bound: float
    assign: np.ndarray | None
    objective: float
    optimal: bool
    rounds: int
    cuts: int
    closed: bool = False  # the last round's plan is in one piece each, within ``gap``
    solver: str = "HiGHS"  # what found the bound: HiGHS rounds or SCIP's branch-and-cut


def contiguous_cuts(
    problem: ContiguousProblem,
    *,
    start: np.ndarray | None = None,
    time_limit_s: float = 60.0,
    repair_s: float = 1.0,
    gap: float = 1e-6,
    incumbents: bool = False,
    stop: Callable[[], bool] | None = None,
    target_gap: float | None = None,
    incumbent: Callable[[], np.ndarray | None] | None = None,
) -> CutPlan | None:
    """Root-free exact contiguous model by separator cuts (HiGHS through ``highspy``).

    Solves the assignment MILP (one territory per unit, balance bands, moves budget), then, for
    each territory in more than one piece, adds for every two pieces S, T (a in S, b in T) and
    every territory t the cut x_at + x_bt - sum over a minimal a-b separator C of x_ct <= 1
    (a territory holding a and b in one piece holds a unit of C), and solves again (Validi and
    Buchanan's a-b separator formulation, as a cut loop). Size cuts (:class:`_SizeCuts`: a set
    too small for a territory's lower band is not the whole territory) are added for every unit
    alone, for the LP relaxation's fractional plans first (up to ``ROOT_CUT_SHARE`` of the time)
    and for every too-small piece of a round's plans. Each round is a relaxation of the
    problem as posed (no roots), so its proven bound holds; a round whose plan is in one piece
    per territory is optimal (within ``gap``, each round's relative MILP gap). ``start`` (a plan
    in one piece per territory) is each round's first incumbent; each round's plan in pieces is
    made one piece each (:func:`make_contiguous`, up to ``repair_s``) for a better one; with
    ``incumbents`` the round's improving plans in pieces give cuts too; ``stop()`` ends the
    loop early (e.g. the same model proved optimal elsewhere). With ``target_gap``, each round
    is cut off at the best plan's cost less that share (HiGHS ``objective_bound``): a round with
    no plan below it proves the plan within ``target_gap`` of optimal (the bound is the cut-off,
    reached long before the rounds' own bounds get there), and the next target is half as far;
    rounds with a plan below it go on as before; once the bound is within ``LOOSE_WITHIN`` of
    the plan, such rounds stop at a ``TARGET_ROUND_GAP`` MIP gap (they only need to give cuts;
    one stopped by that gap above the cut-off proves nothing and is re-run exactly; after
    ``LOOSE_ROUNDS`` of them in a row an exact round raises the bound).
    ``incumbent()``, asked before each round and every half second during one, may give a better
    plan found elsewhere (kept when it is in one piece per territory and meets the bands, locks,
    allowed pairs and budget), which lowers the cut-off and ends a round whose cut-off it is
    below. Returns None when ``highspy`` is not installed.
    """
    try:
        import highspy
    except ImportError:
        return None
    t0 = time.perf_counter()
    cost, mat = problem.cost, problem.adjacency
    n, k = cost.shape
    if not problem.allowed.any(1).all():
        return CutPlan(np.inf, None, np.inf, False, 0, 0)
    pr, pc, pid = problem.pairs
    p = len(pr)
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("mip_rel_gap", float(gap))
    h.addVars(p, np.zeros(p), np.ones(p))
    idx = np.arange(p, dtype=np.int32)
    h.changeColsCost(p, idx, cost[pr, pc])
    h.changeColsIntegrality(p, idx, np.full(p, int(highspy.HighsVarType.kInteger), np.uint8))
    blocks, rlo, rhi = problem.rows()
    a_mat = sp.vstack(blocks).tocsr()
    h.addRows(a_mat.shape[0], np.concatenate(rlo), np.concatenate(rhi), a_mat.nnz,
              a_mat.indptr.astype(np.int32), a_mat.indices.astype(np.int32), a_mat.data)  # fmt: skip
    best, best_obj = None, np.inf
    if start is not None:
        start = np.asarray(start, int)
        if (
            (start >= 0).all()
            and (pid[np.arange(n), start] >= 0).all()
            and (count_pieces(start, mat, k) == 1).all()
        ):
            best, best_obj = start.copy(), problem.objective(start)
    sizes = _SizeCuts(problem)
    cuts, bound = _root_size_cuts(h, sizes, p, pr, pc, n, k, t0 + ROOT_CUT_SHARE * time_limit_s)
    rounds, seen, closed = 0, set(), False
    found: list = []
    if incumbents:
        h.cbMipImprovingSolution += lambda e: found.append(np.array(e.data_out.mip_solution))
    target, cutoff, tight_next, loose_run = target_gap, np.inf, False, 0
    offer = {"plan": None, "cut": False, "below": np.inf}  # a plan offered during a round

    def stop_or_offer() -> bool:  # asked every half second in a round: a plan offered below
        if stop is not None and stop():  # the round's cut-off leaves it nothing to prove
            return True
        got = incumbent()
        if got is not None:
            offer["plan"] = got
            if problem.plan_cost(got) < offer["below"]:
                offer["cut"] = True
        return offer["cut"]

    _stop_at(h, t0 + time_limit_s, stop if incumbent is None else stop_or_offer)
    while True:
        left = time_limit_s - (time.perf_counter() - t0)
        if left <= 0.05 or (stop is not None and stop()):
            break
        offered = None if incumbent is None else incumbent()
        offered = offer["plan"] if offered is None else offered
        offer["plan"] = None
        o_obj = problem.plan_cost(offered)
        if _cheaper(o_obj, best_obj):
            best, best_obj = np.asarray(offered, int).copy(), o_obj
        if bound >= best_obj - 1e-9 * max(abs(best_obj), 1.0):
            break
        cutoff = np.inf
        if target is not None and np.isfinite(best_obj) and best_obj > 0:
            cutoff = best_obj * (1.0 - target)
        h.setOptionValue("objective_bound", float(cutoff))
        # a target round near its target needs no exact optimum to give cuts (far from it, the
        # exact optimum of each round is what raises the bound)
        near = bound >= best_obj * (1.0 - LOOSE_WITHIN)
        loose = np.isfinite(cutoff) and not tight_next and near and loose_run < LOOSE_ROUNDS
        loose_run = loose_run + 1 if loose else 0
        h.setOptionValue("mip_rel_gap", float(max(TARGET_ROUND_GAP, gap) if loose else gap))
        h.setOptionValue("time_limit", float(left))
        if best is not None:
            x0 = np.zeros(p)
            x0[pid[np.arange(n), best]] = 1.0
            sol = highspy.HighsSolution()
            sol.col_value = list(x0)
            h.setSolution(sol)
        found.clear()
        offer["below"] = cutoff if np.isfinite(cutoff) else -np.inf  # only a target round
        h.run()
        rounds += 1
        if offer["cut"]:  # a cheaper plan came: its cut-off makes a new round
            offer["cut"] = False
            logger.debug("separator cuts: round %d cut short by an offered plan", rounds)
            continue
        status = h.getModelStatus()
        info = h.getInfo()
        done = status in (highspy.HighsModelStatus.kOptimal, highspy.HighsModelStatus.kInfeasible)
        plan_at = info.objective_function_value if info.primal_solution_status == 2 else np.inf
        searched = plan_at == np.inf or info.mip_gap <= gap or info.mip_dual_bound >= cutoff
        if np.isfinite(cutoff) and done and plan_at >= cutoff:
            if searched:  # no plan below the cut-off: proven within the target
                bound = max(bound, cutoff * (1.0 - gap))
                logger.debug("separator cuts: round %d at %.1f s proves %.3f (target %.2f %%)",
                             rounds, time.perf_counter() - t0, bound, 100 * target)  # fmt: skip
                target = target / 2.0 if target > 1e-4 else None
            tight_next = not searched  # ended by the loose gap above the cut-off: proves nothing
            continue
        tight_next = False
        if status == highspy.HighsModelStatus.kInfeasible:
            return CutPlan(np.inf, None, np.inf, False, rounds, cuts)
        if np.isfinite(info.mip_dual_bound):
            bound = max(bound, min(float(info.mip_dual_bound), cutoff))
        if info.primal_solution_status != 2:
            break
        final = np.asarray(h.getSolution().col_value)
        new: list = []
        last_new, size_added = True, 0
        for x in [*found, final]:
            assign = np.full(n, -1)
            pick = x[:p] > 0.5
            assign[pr[pick]] = pc[pick]
            if (assign < 0).any():
                continue
            apart = _pieces_apart(assign, mat, k)  # for both kinds of cuts
            sep = _separator_cuts(apart, mat)
            new.extend(sep)
            last_new = bool(sep)
            size_added += _add_cut_rows(h, sizes.from_plan(assign, apart))
            obj = problem.objective(assign)
            if not sep and (count_pieces(assign, mat, k) == 1).all() and obj < best_obj:
                best, best_obj = assign, obj
        logger.debug("separator cuts: round %d at %.1f s, bound %.3f, best %.3f, %d separators",
                     rounds, time.perf_counter() - t0, bound, best_obj, len(new))  # fmt: skip
        if not last_new:
            closed = status == highspy.HighsModelStatus.kOptimal and info.mip_gap <= gap
            if closed or not loose or status != highspy.HighsModelStatus.kOptimal:
                break
            continue  # a better plan in one piece: the next round is cut off below it
        if status != highspy.HighsModelStatus.kOptimal:
            break  # stopped at the time limit on a plan in pieces
        rest = time_limit_s - (time.perf_counter() - t0)  # the round may have used it all
        if repair_s > 0 and rest > 0.1:
            repaired = _repair(assign, problem, time.perf_counter() + min(repair_s, rest / 4))
            if repaired is not None:
                r_obj = problem.objective(repaired)
                if _cheaper(r_obj, best_obj):
                    best, best_obj = repaired, r_obj
        added = 0
        for a, b, sep in new:
            key = (a, b, tuple(sep))
            if key in seen:
                continue
            seen.add(key)
            for cols, coef in _separator_rows(a, b, sep, pid):
                h.addRow(-np.inf, 1.0, len(cols), cols, coef)
                added += 1
        cuts += added + size_added
        if added + size_added == 0:
            break  # pragma: no cover - a cut is always new for a plan in pieces
        if bound >= best_obj - 1e-9 * max(abs(best_obj), 1.0):
            break
    if best is not None:
        bound = min(bound, best_obj)
    optimal = best is not None and bound >= best_obj - 1e-6 * max(abs(best_obj), 1.0)
    return CutPlan(
        float(bound), best, float(best_obj), bool(optimal), rounds, cuts, bool(closed or optimal)
    )


def improve_by_neighbourhoods(
    problem: ContiguousProblem,
    *,
    start: np.ndarray,
    deadline: float,
    sizes: Sequence[int] = (2, 3, 4),
    solve_s: float = 5.0,
    on_better: Callable[[np.ndarray], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> np.ndarray:
    """A plan in one piece per territory improved by re-solving neighbourhoods exactly.

    Large-neighbourhood search: for every set of 2, then 3, then 4 neighbouring territories,
    their units are re-assigned among them by the exact contiguous model
    (:func:`contiguous_cuts` on those units alone; every other territory fixed, its bands and
    the moves budget left to them), and a better plan is kept. Each pass starts by giving the
    territories, as they are, to the centres in the cheapest way (:func:`_relabel`: a rep far
    from its territory can trade places with one that is not its neighbour). Passes repeat while
    one improves a plan, a set unchanged since it last failed is skipped. Before them, every
    border at once (:func:`_resolve_borders`: each unit may stay or join a neighbouring unit's
    territory, all territories together), which finds chains of moves through more than 4
    territories; when the passes improve the plan, the borders go again. Stops at ``deadline``
    (``time.perf_counter()``). ``start`` must be in one piece per territory and meet every
    hard constraint; so does the plan returned (``start`` itself when nothing improves).
    ``on_better(plan)`` is told of every better plan as soon as it is found (e.g. to cut off a
    bound search running beside); ``stop()`` ends the search early (e.g. that search proved a
    plan optimal), asked between re-solves and by the whole-border one.
    """
    tell = on_better if on_better is not None else (lambda plan: None)
    k = problem.cost.shape[1]
    a = np.asarray(start, int).copy()
    coo = problem.adjacency.tocoo()
    failed: set = set()
    again = True

    def going() -> bool:
        return time.perf_counter() < deadline and not (stop is not None and stop())

    while again and going():
        again = False
        if k > max(sizes, default=0) and ("borders", a.tobytes()) not in failed:
            better = _resolve_borders(a, problem, min(
                BORDER_SOLVE_S, BORDER_SHARE * (deadline - time.perf_counter())), stop)  # fmt: skip
            if better is None:
                failed.add(("borders", a.tobytes()))
            else:
                a = better
                tell(a.copy())
        for size in sizes:
            if size > k:
                break
            improved = True
            while improved and going():
                improved = False
                relabelled = _relabel(a, problem)
                if relabelled is not None:
                    a = relabelled
                    tell(a.copy())
                for group in _territory_groups(a, coo, k, size):
                    if not going():
                        break
                    rows = np.flatnonzero(np.isin(a, group))
                    key = (group, rows.tobytes())
                    if key in failed:
                        continue
                    better = _resolve_group(
                        a,
                        rows,
                        np.array(group),
                        problem,
                        min(solve_s, deadline - time.perf_counter()),
                    )
                    if better is None:
                        failed.add(key)
                        continue
                    a[rows] = better
                    improved = again = True
                    tell(a.copy())
    return a


def _territory_groups(a: np.ndarray, coo: sp.coo_matrix, k: int, size: int) -> list:
    """Every set of ``size`` territories that is connected through shared unit boundaries."""
    touch = np.zeros((k, k), bool)
    touch[a[coo.row], a[coo.col]] = True
    np.fill_diagonal(touch, False)
    groups = {(j,) for j in range(k)}
    for _ in range(size - 1):
        groups = {tuple(sorted({*g, int(u)})) for g in groups
                  for u in np.flatnonzero(touch[list(g)].any(0)) if u not in g}  # fmt: skip
    return sorted(groups)


def _relabel(a: np.ndarray, problem: ContiguousProblem) -> np.ndarray | None:
    """The same pieces given to the centres in the cheapest way (an assignment problem of
    territories to centres, each within the centre's bands, allowed pairs and locks; the moves
    budget kept), or None when no other labelling is cheaper."""
    from scipy.optimize import linear_sum_assignment

    cost, vals, lo, hi, allowed = (
        problem.cost,
        problem.values,
        problem.lo,
        problem.hi,
        problem.allowed,
    )
    cur, budget, k = problem.current, problem.budget, problem.cost.shape[1]
    onehot = np.zeros((len(a), k))
    onehot[np.arange(len(a)), a] = 1.0
    price = onehot.T @ cost  # [piece, centre]: the piece's cost for that centre
    load = onehot.T @ vals  # [piece, measure]
    fits = ((load[:, None, :] >= lo[None] - 1e-9 * (1 + np.abs(lo[None])))
            & (load[:, None, :] <= hi[None] + 1e-9 * (1 + np.abs(hi[None])))).all(2)  # fmt: skip
    fits &= (onehot.T @ ~allowed) == 0  # every unit of the piece allowed (locks included)
    big = 1e6 * (1.0 + float(np.abs(price[fits]).sum()))
    piece, centre = linear_sum_assignment(np.where(fits, price, big))
    perm = np.empty(k, int)
    perm[piece] = centre
    new = perm[a]
    if not fits[piece, centre].all() or price[piece, centre].sum() >= (
        price[np.arange(k), np.arange(k)].sum() * (1 - 1e-12)
    ):
        return None
    if cur is not None and ((cur >= 0) & (new != cur)).sum() > budget:
        return None
    return new


def _resolve_borders(a: np.ndarray, problem: ContiguousProblem, seconds: float,
                     stop=None) -> np.ndarray | None:  # fmt: skip
    """Every territory at once, each unit staying or joining the territory of one of its
    neighbouring units, by :func:`contiguous_cuts` (the bands, locks and moves budget of the
    whole model): the new plan when strictly cheaper, else None; ``stop()`` ends it early."""
    if seconds <= 0.5:
        return None
    n, k = problem.cost.shape
    own = np.zeros((n, k), bool)
    own[np.arange(n), a] = True
    near = problem.allowed & (own | (problem.adjacency @ own.astype(np.int32) > 0))
    before = problem.objective(a)
    t0 = time.perf_counter()
    res = contiguous_cuts(replace(problem, allowed=near), start=a, time_limit_s=seconds,
                          repair_s=0.0, stop=stop)  # fmt: skip
    logger.debug("Every border at once: %.3f -> %s in %.1f s (of %.1f; %d pairs).", before,
                 None if res is None else f"{res.objective:.3f}", time.perf_counter() - t0,
                 seconds, int(near.sum()))  # fmt: skip
    if res is None or res.assign is None or res.objective >= before - 1e-7 * max(before, 1.0):
        return None
    return np.asarray(res.assign, int)


def _resolve_group(a: np.ndarray, rows: np.ndarray, group: np.ndarray, problem: ContiguousProblem,
                   seconds: float) -> np.ndarray | None:  # fmt: skip
    """The territories of ``group`` re-made from their ``rows`` by :func:`contiguous_cuts`: the
    rows' new territories when strictly cheaper, else None."""
    if seconds <= 0.05:
        return None
    sub = problem.restricted(rows, group, a)
    col = np.full(problem.cost.shape[1], -1)
    col[group] = np.arange(len(group))
    start = col[a[rows]]
    before = sub.objective(start)
    res = contiguous_cuts(sub, start=start, time_limit_s=seconds, repair_s=0.0)
    if res is None or res.assign is None or res.objective >= before - 1e-7 * max(before, 1.0):
        return None
    return group[res.assign]


def _repair(assign: np.ndarray, problem: ContiguousProblem, deadline: float) -> np.ndarray | None:
    """:func:`make_contiguous` of a plan in pieces, or None when it finds no plan in time."""
    p = problem
    try:
        out = make_contiguous(assign, adjacency=p.adjacency, cost=p.cost, values=p.values,
                              lo=p.lo, hi=p.hi, locks=p.locks, allowed=p.allowed,
                              current=p.current, budget=p.budget, deadline=deadline,
                              strict_deadline=True)  # fmt: skip
    except (InfeasibleError, InvalidInputError):
        return None
    return out if (count_pieces(out, p.adjacency, p.cost.shape[1]) == 1).all() else None


class _SizeCuts:
    """Population cuts of the root-free contiguous model: a connected set C of units whose
    measures stay below territory t's lower band cannot be all of t, so a territory holding a
    unit a of C holds a unit next to C: x_at <= sum over the neighbours N(C) of x_st. Valid for
    every plan in one piece per territory within its bands (no roots, no a-b pair needed), they
    cut pieces too small to be a territory and, unlike the a-b separators, also fractional
    plans (the LP relaxation's), so the rounds start from a stronger model. Each set and
    territory is added once."""

    def __init__(self, problem: ContiguousProblem):
        self.mat, self.vals, self.lo = problem.adjacency, problem.values, problem.lo
        self.pid = problem.pairs[2]
        self.under = self.lo - 1e-9 * np.maximum(np.abs(self.lo), 1.0)  # below this: below the band
        self.seen: set = set()

    def small(self, total: np.ndarray, t: int) -> bool:
        """Whether measures ``total`` stay below territory ``t``'s lower band in some measure."""
        return bool((total < self.under[t]).any())

    def rows(self, members: np.ndarray, t: int, units: np.ndarray | None = None) -> list:
        """The cuts (key, columns, coefficients) of set ``members`` for territory ``t`` and each
        of ``units`` (default all members); none when seen before or not small."""
        members = np.unique(np.asarray(members, int))
        key = (members.tobytes(), t)
        if key in self.seen or not self.small(self.vals[members].sum(0), t):
            return []
        self.seen.add(key)
        nbr = np.setdiff1d(np.unique(self.mat[members].indices), members)
        out_cols = self.pid[nbr, t]
        out_cols = out_cols[out_cols >= 0]
        cuts = []
        for a in members if units is None else units:
            col = self.pid[a, t]
            if col >= 0:
                cuts.append((key, np.concatenate([[col], out_cols]).astype(np.int32),
                             np.concatenate([[1.0], -np.ones(len(out_cols))])))  # fmt: skip
        return cuts

    def singletons(self) -> list:
        """Every unit alone, for every territory whose band it cannot fill."""
        return [c for a in range(len(self.vals)) for t in range(self.pid.shape[1])
                for c in self.rows(np.array([a]), t)]  # fmt: skip

    def from_plan(self, assign: np.ndarray, pieces: list | None = None) -> list:
        """The cuts of every piece of every territory in pieces, for every territory it is too
        small for (``pieces``: :func:`_pieces_apart` of the plan, when already known)."""
        if pieces is None:
            pieces = _pieces_apart(assign, self.mat, self.pid.shape[1])
        return [c for comps in pieces for piece in comps for t in range(self.pid.shape[1])
                for c in self.rows(piece, t)]  # fmt: skip

    def from_fractional(self, x: np.ndarray, *, least: float = 0.02) -> list:
        """Cuts violated by the fractional plan ``x`` ((n, k), 0 where no pair): for each unit
        a and territory t with x_at above ``least``, C grows from a by the neighbour t holds
        most of while C is too small for t; the first C whose neighbours hold less of t than
        a does gives a cut (for a alone)."""
        out = []
        indptr, indices = self.mat.indptr.tolist(), self.mat.indices.tolist()
        vals = self.vals.tolist()  # plain floats: this loop runs in every separation round
        under = self.under.tolist()
        dims = range(self.vals.shape[1])
        for t in range(x.shape[1]):
            xs = x[:, t].tolist()
            floor = under[t]
            for a in np.flatnonzero(x[:, t] > least).tolist():
                inside = {a}
                total = list(vals[a])
                border = {s: xs[s] for s in indices[indptr[a] : indptr[a + 1]]}
                while border and any(total[d] < floor[d] for d in dims):
                    if sum(border.values()) < xs[a] - 1e-4:
                        out.extend(self.rows(np.fromiter(inside, int), t, units=[a]))
                        break
                    b = max(border, key=border.get)
                    del border[b]
                    inside.add(b)
                    total = [u + w for u, w in zip(total, vals[b])]
                    for s in indices[indptr[b] : indptr[b + 1]]:
                        if s not in inside:
                            border[s] = xs[s]
        return out


def _cheaper(obj: float, best_obj: float) -> bool:
    """Whether a plan of objective ``obj`` (inf: none) beats ``best_obj`` (inf: no plan yet) by
    more than rounding."""
    if not np.isfinite(obj):
        return False
    return not np.isfinite(best_obj) or obj < best_obj - 1e-9 * max(abs(best_obj), 1.0)


def _add_cut_rows(h, cuts: list) -> int:
    """Add size cuts (key, columns, coefficients) as rows ``<= 0`` of highspy model ``h``."""
    for _, cols, coef in cuts:
        h.addRow(-np.inf, 0.0, len(cols), cols, coef)
    return len(cuts)


def _pieces_apart(assign: np.ndarray, mat: sp.csr_matrix, k: int) -> list:
    """The pieces (arrays of units) of each territory of ``assign`` in more than one piece."""
    out = []
    for j in range(k):
        members = np.flatnonzero(assign == j)
        if len(members) < 2:
            continue
        ncomp, lab = connected_components(mat[members][:, members], directed=False)
        if ncomp > 1:
            out.append([members[lab == c] for c in range(ncomp)])
    return out


def _separator_rows(a: int, b: int, sep: list, pid: np.ndarray) -> list:
    """The rows (columns, coefficients) of the cut x_at + x_bt - sum over ``sep`` of x_ct <= 1
    for every territory t where a and b may go (pairs not allowed left out)."""
    rows = []
    for t in range(pid.shape[1]):
        if pid[a, t] < 0 or pid[b, t] < 0:
            continue
        cols = [pid[a, t], pid[b, t]] + [pid[c, t] for c in sep]
        coef = [1.0, 1.0] + [-1.0] * len(sep)
        keep = [q for q, c in enumerate(cols) if c >= 0]
        rows.append((np.array([cols[q] for q in keep], np.int32),
                     np.array([coef[q] for q in keep])))  # fmt: skip
    return rows


def _separator_cuts(pieces: list, mat: sp.csr_matrix, per_side: int = 6) -> list:
    """(a, b, minimal a-b separator) for every two pieces S, T of every territory in pieces
    (``pieces``: :func:`_pieces_apart` of the plan): the separator N(S) cut down to the units
    touching b's side, for up to ``per_side`` units a of S and b of T (each the same separator,
    a different cut)."""
    out = []
    n = mat.shape[0]
    for comps in pieces:
        for s_i, s in enumerate(comps):
            in_s = np.zeros(n, bool)
            in_s[s] = True
            nbr = np.zeros(n, bool)
            nbr[mat[s].indices] = True
            nbr &= ~in_s
            keep = ~(nbr | in_s)
            kept = np.flatnonzero(keep)
            _, lab2 = connected_components(mat[keep][:, keep], directed=False)
            for t_i, t in enumerate(comps):
                if t_i == s_i:
                    continue
                side = lab2[np.searchsorted(kept, t[0])]
                reach = kept[lab2 == side]
                touch = np.zeros(n, bool)
                touch[mat[reach].indices] = True
                sep = np.flatnonzero(touch & nbr).tolist()
                for a in s[:per_side].tolist():
                    for b in t[:per_side].tolist():
                        out.append((a, b, sep))
    return out


# ----------------------------------------------------------------------------- helpers


def geometry_array(geoms) -> np.ndarray:
    """An object array of shapely geometries from a GeoDataFrame, GeoSeries or sequence."""
    if hasattr(geoms, "geometry") and not isinstance(geoms, shapely.Geometry):
        geoms = geoms.geometry
    if hasattr(geoms, "values") and not isinstance(geoms, np.ndarray):
        geoms = geoms.values
    arr = np.empty(len(geoms), dtype=object)
    arr[:] = list(geoms)
    return arr


def _as_geometry(area) -> shapely.Geometry:
    if isinstance(area, shapely.Geometry):
        return shapely.make_valid(area)
    return shapely.make_valid(shapely.union_all(geometry_array(area)))


def _matrix(adjacency) -> sp.csr_matrix:
    mat = adjacency.matrix if isinstance(adjacency, Adjacency) else adjacency
    return sp.csr_matrix(mat)


def _symmetric(rows: np.ndarray, cols: np.ndarray, n: int) -> sp.csr_matrix:
    r = np.concatenate([rows, cols])
    c = np.concatenate([cols, rows])
    return _binary(sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(n, n)))


def _binary(mat) -> sp.csr_matrix:
    mat = sp.csr_matrix(mat)
    mat.setdiag(0)
    mat.eliminate_zeros()
    mat.data[:] = 1.0
    mat.sort_indices()
    return mat


def _link_components(g: np.ndarray, matrix: sp.csr_matrix) -> tuple[sp.csr_matrix, list]:
    """Link every group with no neighbour to its nearest unit outside it until one group."""
    n = len(g)
    linked: list[tuple[int, int]] = []
    if n <= 1:
        return matrix, linked
    tree = shapely.STRtree(g)
    x0, y0, x1, y1 = shapely.total_bounds(g)
    step = max(math.hypot(x1 - x0, y1 - y0) / math.sqrt(n), 1.0)
    for _ in range(64):
        n_comp, labels = connected_components(matrix, directed=False)
        if n_comp <= 1:
            break
        main = int(np.argmax(np.bincount(labels)))
        new = []
        for c in range(n_comp):
            if c == main:
                continue
            members = np.flatnonzero(labels == c)
            d = step
            while True:
                src, dst = tree.query(g[members], predicate="dwithin", distance=d)
                out = labels[dst] != c
                if out.any():
                    src, dst = members[src[out]], dst[out]
                    dist = shapely.distance(g[src], g[dst])
                    best = np.lexsort((dst, src, dist))[0]
                    new.append((int(src[best]), int(dst[best])))
                    break
                d *= 4.0
        linked.extend(new)
        r = np.array([p[0] for p in new])
        c_ = np.array([p[1] for p in new])
        matrix = _binary(matrix + _symmetric(r, c_, n))
    if linked:
        logger.info("Adjacency: %d unit group(s) with no land neighbour (islands, exclaves) "
                    "linked to their nearest unit.", len(linked))  # fmt: skip
    return matrix, linked
