"""Colour-blind-safe territory colours, neighbours kept apart by greedy graph colouring."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

# Okabe-Ito (colour-blind safe) followed by Paul Tol "muted"; hex RGB.
PALETTE: tuple[str, ...] = (
    "#E69F00",
    "#56B4E9",
    "#009E73",
    "#F0E442",
    "#0072B2",
    "#D55E00",
    "#CC79A7",
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
    """Return ``{key: set of keys whose shapely geometry touches or overlaps it}``."""
    keys = list(geometries)
    adj: dict[Hashable, set] = {k: set() for k in keys}
    for i, a in enumerate(keys):
        ga = geometries[a]
        if ga is None or ga.is_empty:
            continue
        for b in keys[i + 1 :]:
            gb = geometries[b]
            if gb is None or gb.is_empty:
                continue
            if ga.intersects(gb):
                adj[a].add(b)
                adj[b].add(a)
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


def hex_to_rgb(colour: str) -> tuple[int, int, int]:
    """``"#RRGGBB"`` -> ``(r, g, b)``."""
    c = colour.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


def kml_colour(colour: str, alpha: int = 255) -> str:
    """KML ``aabbggrr`` from ``"#RRGGBB"``."""
    r, g, b = hex_to_rgb(colour)
    return f"{alpha:02x}{b:02x}{g:02x}{r:02x}"
