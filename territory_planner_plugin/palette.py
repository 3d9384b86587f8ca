"""Colour-blind-safe territory colours, neighbours kept apart by greedy graph colouring."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from functools import lru_cache

# Okabe-Ito (colour-blind safe) followed by Paul Tol "muted"; hex RGB. The first five differ in
# hue (the two blues and orange/vermillion are not both among the first five).
PALETTE: tuple[str, ...] = (
    "#E69F00",
    "#56B4E9",
    "#009E73",
    "#F0E442",
    "#CC79A7",
    "#0072B2",
    "#D55E00",
    "#999999",
    "#332288",
    "#88CCEE",
    "#44AA99",
    "#117733",
    "#DDCC77",
    "#CC6677",
    "#AA4499",
    "#882255",
)


NEAR_DELTA_E = 34.0  # colours closer than this (CIE76 in CIELAB) are told apart badly side by side


@lru_cache(maxsize=1024)
def _lab(colour: str) -> tuple[float, float, float]:
    """CIELAB (D65) of an sRGB ``#RRGGBB`` colour."""
    rgb = [int(colour[i : i + 2], 16) / 255.0 for i in (1, 3, 5)]
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    xyz = (
        (0.4124 * lin[0] + 0.3576 * lin[1] + 0.1805 * lin[2]) / 0.95047,
        0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2],
        (0.0193 * lin[0] + 0.1192 * lin[1] + 0.9505 * lin[2]) / 1.08883,
    )
    f = [t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116 for t in xyz]
    return 116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])


def near(a: str, b: str) -> bool:
    """Whether colours ``a`` and ``b`` (``#RRGGBB``) are hard to tell apart side by side (the
    same, or within :data:`NEAR_DELTA_E`: sky blue and blue, amber and vermillion, ...)."""
    if a.upper() == b.upper():
        return True
    la, lb = _lab(a), _lab(b)
    return sum((x - y) ** 2 for x, y in zip(la, lb)) < NEAR_DELTA_E**2


def _pick(cands: Sequence[str], used: Mapping[str, int], near_by: set, rank) -> str:
    """The least-used colour of ``cands`` (one colour per territory while the palette lasts),
    among those least like the neighbours' colours ``near_by``, then in palette order."""
    return min(cands, key=lambda c: (used[c], any(near(c, n) for n in near_by), rank(c)))


def _untangle(
    out: dict, adjacency: Mapping[Hashable, set], order: Sequence[Hashable], fixed: set
) -> None:
    """Swap the colours of two territories (not ``fixed``) while it leaves fewer neighbours in
    colours hard to tell apart (:func:`near`); in place, so every colour is used as often."""

    def clashes(k: Hashable, c: str) -> int:
        return sum(near(c, out[n]) for n in adjacency.get(k, ()) if n in out and n != k)

    free = [k for k in order if k not in fixed]
    for _ in range(10):  # passes; each swap lowers the clashes, so it ends anyway
        swapped = False
        for a in free:
            if not clashes(a, out[a]):
                continue
            for b in free:
                ca, cb = out[a], out[b]
                if b == a or ca == cb:
                    continue
                before = clashes(a, ca) + clashes(b, cb)
                out[a], out[b] = cb, ca
                if clashes(a, cb) + clashes(b, ca) < before:
                    swapped = True
                    break
                out[a], out[b] = ca, cb
        if not swapped:
            return


def adjacency_from_geometries(geometries: Mapping[Hashable, object]) -> dict[Hashable, set]:
    """Return ``{key: set of keys whose shapely geometry touches or overlaps it}``.

    Exact, without testing every pair in full: pairs whose boxes meet (spatial index) and that
    share a vertex intersect (neighbouring territories built from one diagram do), pairs whose
    convex hulls are apart do not; ``intersects`` decides the rest.
    """
    import numpy as np
    import shapely

    keys = list(geometries)
    adj: dict[Hashable, set] = {k: set() for k in keys}
    idx = [i for i, k in enumerate(keys)
           if geometries[k] is not None and not geometries[k].is_empty]  # fmt: skip
    if len(idx) < 2:
        return adj
    geoms = np.empty(len(idx), dtype=object)
    geoms[:] = [geometries[keys[i]] for i in idx]
    a, b = shapely.STRtree(geoms).query(geoms)
    keep = a < b
    a, b = a[keep], b[keep]
    hit = np.zeros(len(a), bool)
    coords, of = shapely.get_coordinates(geoms, return_index=True)
    if len(coords):
        _, point = np.unique(coords, axis=0, return_inverse=True)
        point = point.ravel()
        order = np.lexsort((of, point))
        p, o = point[order], of[order]
        same = (p[1:] == p[:-1]) & (o[1:] != o[:-1])
        shared = set(zip(np.minimum(o[:-1], o[1:])[same].tolist(),
                         np.maximum(o[:-1], o[1:])[same].tolist()))  # fmt: skip
        hit = np.array([(s, d) in shared for s, d in zip(a.tolist(), b.tolist())], bool)
    open_ = np.flatnonzero(~hit)
    if len(open_):
        hulls = shapely.convex_hull(geoms)
        near = open_[shapely.intersects(hulls[a[open_]], hulls[b[open_]])]
        if len(near):  # prepared: a territory of many pieces is tested against many others
            shapely.prepare(geoms[np.unique(a[near])])
            hit[near] = shapely.intersects(geoms[a[near]], geoms[b[near]])
    for s, d in zip(a[hit].tolist(), b[hit].tolist()):
        adj[keys[idx[s]]].add(keys[idx[d]])
        adj[keys[idx[d]]].add(keys[idx[s]])
    return adj


def assign_colours(
    keys: Sequence[Hashable],
    adjacency: Mapping[Hashable, set] | None = None,
    *,
    palette: Sequence[str] = PALETTE,
) -> dict[Hashable, str]:
    """Map each key to a palette colour so that adjacent keys differ where the palette allows.

    Greedy colouring in order of decreasing degree (ties by key order); each key gets the
    least-used palette colour not used by an already coloured neighbour, preferring one unlike
    the neighbours' colours (:func:`near`). Deterministic.
    """
    adjacency = adjacency or {}
    order = sorted(range(len(keys)), key=lambda i: (-len(adjacency.get(keys[i], ())), str(keys[i])))
    used = dict.fromkeys(palette, 0)
    out: dict[Hashable, str] = {}
    for i in order:
        k = keys[i]
        taken = {out[n] for n in adjacency.get(k, ()) if n in out}
        free = [c for c in palette if c not in taken] or list(palette)
        c = _pick(free, used, taken, palette.index)
        used[c] += 1
        out[k] = c
    _untangle(out, adjacency, [keys[i] for i in order], set())
    return out


COLOUR_FIELD = "colour"  # output field that carries each territory's colour ("#RRGGBB")


def plan_colours(
    territory_ids: Sequence[Hashable],
    *,
    adjacency: Mapping[Hashable, set] | None = None,
    existing: Mapping[Hashable, str] | None = None,
    palette: Sequence[str] = PALETTE,
) -> dict[Hashable, str]:
    """The one colour of each territory of a plan, decided once and stored with the plan.

    Territories named in ``existing`` (e.g. read from the plan a rebalance starts from with
    :func:`colours_from_table`) keep their colour, so a territory looks the same in design,
    rebalance, report, comparison and exports; the others get palette colours by
    :func:`assign_colours`, avoiding the colours of their neighbours and, where the palette
    allows, colours already taken and colours like their neighbours' (:func:`near`).
    """
    keep = {k: c for k, c in (existing or {}).items() if k in set(territory_ids) and is_colour(c)}
    rest = [k for k in territory_ids if k not in keep]
    if not rest:
        return {k: keep[k] for k in territory_ids}
    taken = set(keep.values())
    free = [c for c in palette if c not in taken] or list(palette)
    adjacency = adjacency or {}
    out = dict(keep)
    order = sorted(rest, key=lambda k: (-len(adjacency.get(k, ())), str(k)))
    used = dict.fromkeys(free, 0)
    for k in order:
        beside = {out[n] for n in adjacency.get(k, ()) if n in out}
        cands = [c for c in free if c not in beside] or free
        c = _pick(cands, used, beside, free.index)
        used[c] += 1
        out[k] = c
    _untangle(out, adjacency, order, set(keep))
    return {k: out[k] for k in territory_ids}


def colours_from_table(
    rows: object, *, territory_field: str = "territory_id", colour_field: str = COLOUR_FIELD
) -> dict[str, str]:
    """Territory id -> colour from a plan output (a DataFrame with both fields); {} without them.

    The first valid ``#RRGGBB`` value of each territory counts.
    """
    cols = getattr(rows, "columns", ())
    if territory_field not in cols or colour_field not in cols:
        return {}
    out: dict[str, str] = {}
    for tid, col in zip(rows[territory_field], rows[colour_field]):  # type: ignore[index]
        if tid is None or (isinstance(tid, float) and tid != tid):
            continue
        if is_colour(col):
            out.setdefault(str(tid), str(col).upper())
    return out


def colour_plan(
    accounts: object,
    territories: object,
    centres: object,
    *,
    previous: object | None = None,
    current_field: str | None = None,
    territory_field: str = "territory_id",
) -> dict[str, str]:
    """Decide a plan's territory colours once and store them in its three outputs (in place).

    Each frame gets a :data:`COLOUR_FIELD` column (``"#RRGGBB"``, replacing one it had) from its
    ``territory_field``. Neighbouring territory polygons get different colours; a plan started
    from ``previous`` (the input accounts, with today's territory in ``current_field`` and a
    colour field, e.g. the output of an earlier run) keeps that plan's colours.

    Parameters
    ----------
    accounts, territories, centres
        The plan's outputs (DataFrames with ``territory_field``; territories with polygons).
    previous
        The accounts the run started from, or None.
    current_field
        Field of ``previous`` that names each account's current territory, or None.
    territory_field
        Territory id field of the outputs.

    Returns
    -------
    dict
        Territory id -> colour.
    """
    ids = [str(t) for t in territories[territory_field]]  # type: ignore[index]
    geoms = getattr(territories, "geometry", None)
    adjacency = adjacency_from_geometries(dict(zip(ids, geoms))) if geoms is not None else None
    existing = (
        colours_from_table(previous, territory_field=current_field)
        if previous is not None and current_field
        else {}
    )
    colours = plan_colours(ids, adjacency=adjacency, existing=existing)
    for frame in (accounts, territories, centres):
        if frame is None or territory_field not in getattr(frame, "columns", ()):
            continue
        clash = [c for c in frame.columns if str(c).lower() == COLOUR_FIELD]  # type: ignore[attr-defined]
        if clash:
            frame.drop(columns=clash, inplace=True)  # type: ignore[attr-defined]
        frame[COLOUR_FIELD] = [colours.get(str(t)) for t in frame[territory_field]]  # type: ignore[index]
    return colours


def is_colour(value: object) -> bool:
    """True for a ``"#RRGGBB"`` string."""
    if not isinstance(value, str) or len(value) != 7 or not value.startswith("#"):
        return False
    try:
        int(value[1:], 16)
    except ValueError:
        return False
    return True


def hex_to_rgb(colour: str) -> tuple[int, int, int]:
    """``"#RRGGBB"`` -> ``(r, g, b)``."""
    c = colour.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


def kml_colour(colour: str, alpha: int = 255) -> str:
    """KML ``aabbggrr`` from ``"#RRGGBB"``."""
    r, g, b = hex_to_rgb(colour)
    return f"{alpha:02x}{b:02x}{g:02x}{r:02x}"
