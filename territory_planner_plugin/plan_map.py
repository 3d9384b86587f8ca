"""The report's map, drawn with matplotlib: territories, accounts coloured by territory (moved
ones marked), rep homes or centres, one label per territory inside its own area, a legend with
rep names, a scale bar and north arrow; the view is the extent of the accounts, outliers noted."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from ._validate import is_areas
from .htmlpage import agg_figure, figure_png
from .kpis import text_key

OUTLIER_QUANTILES = (0.01, 0.99)  # the view covers these quantiles of the accounts, padded
_PAD = 0.08  # share of the view added around the accounts
_OUTLIER_FACTOR = 0.5  # accounts further out than this share of the box are outliers


@dataclass
class PlanMap:
    """A rendered map: PNG bytes, the note on accounts left out of the view, the label points."""

    png: bytes
    note: str
    labels: dict  # territory key -> (x, y) in the map's CRS


def draw_plan_map(
    accounts,
    *,
    territory_field: str,
    colours: Mapping[str, str],
    territories=None,
    centres=None,
    moved=None,
    rep_names: Mapping[str, str] | None = None,
    width_in: float = 10.0,
    height_in: float = 8.0,
) -> PlanMap:
    """Draw the plan (GeoDataFrames; drawn in a metric CRS) and return a :class:`PlanMap`.

    ``colours`` maps territory keys to ``#RRGGBB``; ``moved`` is a boolean per account (marked
    with a black ring); ``centres`` are points with ``territory_id`` or ``rep_id``;
    ``rep_names`` maps territory keys to the rep's name for the legend.
    """
    crs = _metric_crs(accounts)
    acc = _to(accounts, crs)
    ok = (acc.geometry.notna() & ~acc.geometry.is_empty).to_numpy()
    geoms = acc.geometry.to_numpy()[ok]
    areas = is_areas(geoms)
    # a plan of areas (postal areas, counties) is drawn as its areas, each one point otherwise
    xy = shapely.get_coordinates(shapely.point_on_surface(geoms) if areas else geoms)
    keys = np.array([text_key(v) for v in acc[territory_field].to_numpy()[ok]], dtype=object)
    moved_ok = None if moved is None else np.asarray(moved, dtype=bool)[ok]
    (x0, y0, x1, y1), outside = _view(shapely.get_coordinates(geoms)) if areas else _view(xy)
    # the map keeps its shape: the figure follows the view's aspect, the legend on the right
    legend_in = 2.9
    map_w = width_in - legend_in
    map_h = min(max(map_w * (y1 - y0) / max(x1 - x0, 1e-9), 4.0), height_in)
    map_w = min(map_w, map_h * (x1 - x0) / max(y1 - y0, 1e-9))
    fig_w, fig_h = map_w + legend_in + 0.2, map_h + 0.2
    fig = agg_figure(fig_w, fig_h, dpi=110)
    ax = fig.add_axes([0.1 / fig_w, 0.1 / fig_h, map_w / fig_w, map_h / fig_h])
    ax.set_aspect("equal")
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_facecolor("#f7f7f4")
    label_at: dict[str, tuple[float, float]] = {}
    polys = {}
    if areas:
        _draw_areas(ax, geoms, keys, colours, moved_ok)
        if territories is None:  # the territories' outlines are the unions of their areas
            territories = gpd.GeoDataFrame(
                {territory_field: [k for k in dict.fromkeys(keys) if k is not None]},
                geometry=[shapely.union_all(geoms[keys == k]) for k in dict.fromkeys(keys)
                          if k is not None], crs=crs)  # fmt: skip
    if territories is not None and territory_field_of(territories, territory_field):
        tf = territory_field_of(territories, territory_field)
        ter = _to(territories, crs)
        for tid, geom in zip(ter[tf], ter.geometry):
            key = text_key(tid)
            if key is None or geom is None or geom.is_empty:
                continue
            polys[key] = geom if key not in polys else polys[key].union(geom)
        for key, geom in polys.items():
            colour = colours.get(key, "#999999")
            for part in shapely.get_parts(geom):
                if part.geom_type != "Polygon":
                    continue
                ext = np.asarray(part.exterior.coords)
                ax.fill(ext[:, 0], ext[:, 1], color=colour, alpha=0.28, lw=0, zorder=1)
                ax.plot(ext[:, 0], ext[:, 1], color=_darker(colour), lw=1.4, zorder=2)
    for key in sorted(set(keys) - {None}):
        pts = xy[keys == key]
        colour = colours.get(key, "#999999")
        if not areas:
            ax.scatter(pts[:, 0], pts[:, 1], s=14, color=colour, edgecolors="#333333",
                       linewidths=0.3, zorder=3)  # fmt: skip
        if not polys or key in polys:  # a territory without an area (named accounts): no label
            label_at[key] = _label_point(polys.get(key), pts, (x0, y0, x1, y1))
    if moved_ok is not None and moved_ok.any() and not areas:
        ax.scatter(xy[moved_ok, 0], xy[moved_ok, 1], s=46, facecolors="none",
                   edgecolors="black", linewidths=0.9, zorder=4)  # fmt: skip
    centre_handles = _draw_centres(ax, centres, crs, colours)
    for key, (lx, ly) in label_at.items():
        ax.annotate(
            key, (lx, ly), ha="center", va="center", fontsize=12, fontweight="bold", zorder=6,
            color="#111111",
            bbox={"boxstyle": "round,pad=0.25", "fc": "white", "ec": _darker(colours.get(key,
                  "#999999")), "lw": 1.5, "alpha": 0.9},
        )  # fmt: skip
    _scale_bar(ax, x0, y0, x1, y1)
    _north_arrow(ax)
    _legend(fig, colours, sorted(set(keys) - {None}), rep_names or {}, moved_ok, centre_handles,
            (map_w + 0.3) / fig_w, areas=areas)  # fmt: skip
    note = ""
    if outside:
        note = (
            f"{outside} account(s) lie outside the map (far from the others); they are in the "
            "tables and the territory totals. Check their locations."
        )
    return PlanMap(figure_png(fig, tight=False), note, label_at)


def _draw_areas(ax, geoms, keys, colours, moved) -> None:
    """Each area filled with its territory's colour (thin white borders between areas); moved
    areas hatched."""
    for i, (geom, key) in enumerate(zip(geoms, keys)):
        colour = colours.get(key, "#999999") if key is not None else "#dddddd"
        hatch = "///" if moved is not None and moved[i] else None
        for part in shapely.get_parts(geom):
            if part.geom_type != "Polygon":
                continue
            ext = np.asarray(part.exterior.coords)
            ax.fill(ext[:, 0], ext[:, 1], facecolor=colour, alpha=0.55, edgecolor="white",
                    lw=0.4, hatch=hatch, zorder=0.5)  # fmt: skip


def territory_field_of(frame, preferred: str) -> str | None:
    """The territory id field of a plan output: ``preferred``, else territory_id / rep_id."""
    for name in (preferred, "territory_id", "rep_id"):
        if name in getattr(frame, "columns", ()):
            return name
    return None


def _metric_crs(frame):
    crs = getattr(frame, "crs", None)
    if crs is None or crs.is_projected:
        return crs
    ok = frame.geometry.notna() & ~frame.geometry.is_empty
    return frame[ok].estimate_utm_crs() if ok.any() else crs


def _to(frame, crs):
    if crs is None or frame.crs is None or frame.crs.equals(crs):
        return frame
    return frame.to_crs(crs)


def _view(xy: np.ndarray) -> tuple[tuple[float, float, float, float], int]:
    """The 1st-99th percentile box of the accounts, padded; and how many accounts lie outside
    a wider box (the view is not stretched for them)."""
    if len(xy) == 0:
        return (0.0, 0.0, 1.0, 1.0), 0
    lo = np.quantile(xy, OUTLIER_QUANTILES[0], axis=0)
    hi = np.quantile(xy, OUTLIER_QUANTILES[1], axis=0)
    span = np.maximum(hi - lo, 1000.0)
    x0, y0 = lo - span * _PAD
    x1, y1 = hi + span * _PAD
    inside = (
        (xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1)
    )  # fmt: skip
    near = (
        (xy[:, 0] >= lo[0] - span[0] * _OUTLIER_FACTOR)
        & (xy[:, 0] <= hi[0] + span[0] * _OUTLIER_FACTOR)
        & (xy[:, 1] >= lo[1] - span[1] * _OUTLIER_FACTOR)
        & (xy[:, 1] <= hi[1] + span[1] * _OUTLIER_FACTOR)
    )
    if not near.all():  # real outliers: keep the box
        return (x0, y0, x1, y1), int((~inside).sum())
    # no outliers: show every account
    lo, hi = xy.min(0), xy.max(0)
    span = np.maximum(hi - lo, 1000.0)
    (x0, y0), (x1, y1) = lo - span * _PAD, hi + span * _PAD
    return (x0, y0, x1, y1), 0


def _label_point(poly, pts: np.ndarray, box) -> tuple[float, float]:
    """Inside the territory: a point on the largest piece of its polygon that lies in view,
    else the medoid of its accounts in view."""
    x0, y0, x1, y1 = box
    view = shapely.box(x0, y0, x1, y1)
    if poly is not None:
        clipped = poly.intersection(view)
        parts = [p for p in shapely.get_parts(clipped) if p.geom_type == "Polygon" and p.area > 0]
        if parts:
            biggest = max(parts, key=lambda p: p.area)
            # the pole of inaccessibility keeps the label away from the edges
            try:
                point = shapely.maximum_inscribed_circle(biggest).coords[0]  # shapely >= 2.1
            except AttributeError:
                from shapely.ops import polylabel

                point = polylabel(biggest, tolerance=max(biggest.length / 500, 1.0)).coords[0]
            return float(point[0]), float(point[1])
    in_view = pts[(pts[:, 0] >= x0) & (pts[:, 0] <= x1) & (pts[:, 1] >= y0) & (pts[:, 1] <= y1)]
    cands = in_view if len(in_view) else pts
    if len(cands) > 400:
        cands = cands[np.linspace(0, len(cands) - 1, 400).astype(int)]
    d = np.sqrt(((cands[:, None, :] - cands[None, :, :]) ** 2).sum(-1)).sum(1)
    best = cands[int(np.argmin(d))]
    return float(best[0]), float(best[1])


def _draw_centres(ax, centres, crs, colours) -> list:
    if centres is None or len(centres) == 0:
        return []
    field = territory_field_of(centres, "territory_id")
    cen = _to(centres, crs)
    ok = (cen.geometry.notna() & ~cen.geometry.is_empty).to_numpy()
    xy = shapely.get_coordinates(cen.geometry.to_numpy()[ok])
    keys = [text_key(v) for v in cen[field].to_numpy()[ok]] if field else [None] * len(xy)
    fill = [colours.get(k, "#ffffff") if k else "#ffffff" for k in keys]
    ax.scatter(xy[:, 0], xy[:, 1], marker="*", s=320, c=fill, edgecolors="black",
               linewidths=1.2, zorder=5)  # fmt: skip
    return ["centre"]


def _scale_bar(ax, x0, y0, x1, y1) -> None:
    """A scale bar of a round length (about a fifth of the map's width), bottom left."""
    width = x1 - x0
    raw = width / 5.0
    exp = 10 ** math.floor(math.log10(raw))
    length = max(m * exp for m in (1, 2, 5) if m * exp <= raw)
    bx, by = x0 + width * 0.04, y0 + (y1 - y0) * 0.05
    h = (y1 - y0) * 0.012
    ax.add_patch(_rect(bx, by, length / 2, h, "black"))
    ax.add_patch(_rect(bx + length / 2, by, length / 2, h, "white"))
    text = f"{length / 1000:g} km" if length >= 1000 else f"{length:g} m"
    box = {"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85}
    ax.annotate(text, (bx + length, by + h * 2.2), ha="center", va="bottom", fontsize=9,
                zorder=7, bbox=box)  # fmt: skip
    ax.annotate("0", (bx, by + h * 2.2), ha="center", va="bottom", fontsize=9, zorder=7, bbox=box)


def _rect(x, y, w, h, colour):
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), w, h, facecolor=colour, edgecolor="black", lw=0.8, zorder=7)


def _north_arrow(ax) -> None:
    ax.annotate("N", xy=(0.96, 0.95), xytext=(0.96, 0.86), xycoords="axes fraction",
                ha="center", va="center", fontsize=11, fontweight="bold",
                arrowprops={"arrowstyle": "-|>", "color": "black", "lw": 1.5})  # fmt: skip


def _legend(fig, colours, keys, rep_names, moved, centres, left: float,
            areas: bool = False) -> None:  # fmt: skip
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = []
    for k in keys:
        name = rep_names.get(k)
        text = f"{k} – {name}" if name and name != k else k
        handles.append(Patch(facecolor=colours.get(k, "#999999"), edgecolor=_darker(
            colours.get(k, "#999999")), label=text))  # fmt: skip
    if areas:
        if moved is not None and moved.any():
            handles.append(Patch(facecolor="#dddddd", edgecolor="white", hatch="///",
                                 label=f"moved ({int(moved.sum()):,} areas)"))  # fmt: skip
    else:
        handles.append(Line2D([], [], marker="o", ls="", color="#bbbbbb",
                              markeredgecolor="#333333", label="account"))  # fmt: skip
    if not areas and moved is not None and moved.any():
        handles.append(Line2D([], [], marker="o", ls="", markerfacecolor="none",
                              markeredgecolor="black", markersize=9,
                              label=f"moved ({int(moved.sum()):,} accounts)"))  # fmt: skip
    if centres:
        handles.append(Line2D([], [], marker="*", ls="", markerfacecolor="white",
                              markeredgecolor="black", markersize=14, label="rep home"))  # fmt: skip
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(left, 0.98), fontsize=10,
               title="Territories", title_fontsize=11, frameon=False)  # fmt: skip


def _darker(colour: str, factor: float = 0.65) -> str:
    c = colour.lstrip("#")
    try:
        r, g, b = (int(c[i : i + 2], 16) for i in (0, 2, 4))
    except ValueError:
        return "#333333"
    return "#{:02x}{:02x}{:02x}".format(*(int(v * factor) for v in (r, g, b)))


def rep_names_from(centres, territory_field: str = "territory_id") -> dict[str, str]:
    """Territory key -> rep name from a centres or reps table (``rep_name`` or ``name``)."""
    if centres is None:
        return {}
    field = territory_field_of(centres, territory_field)
    name = next((c for c in ("rep_name", "name") if c in centres.columns), None)
    if field is None or name is None:
        return {}
    out = {}
    for k, v in zip(centres[field], centres[name]):
        key = text_key(k)
        if key is not None and v is not None and not (isinstance(v, float) and pd.isna(v)):
            out.setdefault(key, str(v))
    return out
