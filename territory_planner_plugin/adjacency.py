"""Which units touch, and the shapes that follow from it.

Adjacency comes from shared boundaries of unit polygons (rook: a shared edge, queen: any shared
point) with a small snapping tolerance for digitising gaps, or from the Voronoi cells of point
accounts inside a study area (:func:`tight_outline` of the accounts when none is given). Groups
with no land neighbour (islands, exclaves) are linked to their nearest unit, so the graph is
always connected and never makes a plan infeasible alone. :func:`territory_polygons` draws the
territories of point accounts from the same triangulation, and :func:`count_pieces` /
:func:`plan_pieces` count the connected pieces of each territory of any plan.
"""

from __future__ import annotations

import heapq
import logging
import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import shapely
from scipy.sparse.csgraph import connected_components
from scipy.spatial import Delaunay, QhullError, cKDTree

from .errors import InvalidInputError

logger = logging.getLogger(__name__)

ADJACENCY_RULES = ("rook", "queen")
OUTLINE_RATIO = 0.3  # concave hull ratio of tight_outline (0 = most concave, 1 = convex hull)


@dataclass(frozen=True)
class Adjacency:
    """Neighbours of units: a symmetric 0/1 matrix plus what was added to make it connected.

    ``matrix`` (n, n) has no diagonal and includes the island links; ``linked`` lists those
    links (unit of a group with no land neighbour, nearest unit outside it); ``snapped`` counts
    neighbour pairs found only within the snapping tolerance ``snap_m`` (0: exact only, or not
    polygons).
    """

    matrix: sp.csr_matrix
    linked: list[tuple[int, int]]
    snapped: int
    snap_m: float = 0.0


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
    return Adjacency(matrix=matrix, linked=linked, snapped=snapped, snap_m=snap)


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
