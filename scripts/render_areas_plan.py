"""Draw a plan built from areas: territories (dissolved units) over their units, as a PNG.

Usage: ``python scripts/render_areas_plan.py UNITS.gpkg TERRITORIES.gpkg OUT.png [ACCOUNTS.gpkg]``
(the OUTPUT_UNITS, OUTPUT_TERRITORIES and optional OUTPUT_ACCOUNTS of designterritories). Colours
come from the plugin's palette, so neighbouring territories differ as they do in QGIS.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pyogrio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from territory_planner_plugin import palette  # noqa: E402


def _read(path: str):
    """The data layer of a GeoPackage written by qgis_process (not its ``layer_styles`` table)."""
    layers = [name for name, _ in pyogrio.list_layers(path) if name != "layer_styles"]
    return pyogrio.read_dataframe(path, layer=layers[0] if layers else None)


def render(units_path: str, territories_path: str, out_path: str, accounts_path: str = "") -> None:
    """Write the picture of ``territories_path`` over ``units_path`` to ``out_path``."""
    units = _read(units_path)
    territories = _read(territories_path)
    ids = sorted(territories["territory_id"].astype(str))
    geoms = dict(zip(territories["territory_id"].astype(str), territories.geometry))
    colours = palette.assign_colours(ids, palette.adjacency_from_geometries(geoms))
    fig, ax = plt.subplots(figsize=(7, 8), dpi=110)
    units_colour = units["territory_id"].astype(str).map(colours)
    units.plot(ax=ax, color=units_colour, alpha=0.55, edgecolor="white", linewidth=0.5)
    territories.boundary.plot(ax=ax, color="#303030", linewidth=1.1)
    if accounts_path:
        accounts = _read(accounts_path).to_crs(units.crs)
        accounts.plot(ax=ax, color="#202020", markersize=2, alpha=0.6)
    x0, y0, x1, y1 = units.total_bounds  # the areas, not accounts placed from far away
    margin = 0.03 * max(x1 - x0, y1 - y0)
    ax.set_xlim(x0 - margin, x1 + margin)
    ax.set_ylim(y0 - margin, y1 + margin)
    for tid, geom in geoms.items():
        point = geom.representative_point()
        ax.annotate(tid, (point.x, point.y), ha="center", va="center", fontsize=11,
                    fontweight="bold", color="#111111")  # fmt: skip
    pieces = ""
    if "pieces" in territories.columns:
        counts = territories["pieces"].astype(int)
        pieces = f"; pieces per territory: {', '.join(map(str, counts))}"
    ax.set_title(f"{len(territories)} territories from {len(units)} areas{pieces}", fontsize=10)
    ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(out_path)
    plt.close(fig)


if __name__ == "__main__":
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    render(*sys.argv[1:])
