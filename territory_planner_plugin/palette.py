"""Colour-blind-safe territory colours, neighbours kept apart by greedy graph colouring."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

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
    least-used palette colour not used by an already coloured neighbour. Deterministic.
    """
    adjacency = adjacency or {}
    order = sorted(range(len(keys)), key=lambda i: (-len(adjacency.get(keys[i], ())), str(keys[i])))
    used = [0] * len(palette)
    out: dict[Hashable, str] = {}
    for i in order:
        k = keys[i]
        taken = {out[n] for n in adjacency.get(k, ()) if n in out}
        free = [j for j, c in enumerate(palette) if c not in taken] or list(range(len(palette)))
        j = min(free, key=lambda j: (used[j], j))
        used[j] += 1
        out[k] = palette[j]
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
    allows, colours already taken.
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
        near = {out[n] for n in adjacency.get(k, ()) if n in out}
        cands = [c for c in free if c not in near] or free
        c = min(cands, key=lambda c: (used[c], free.index(c)))
        used[c] += 1
        out[k] = c
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
