"""Build sample_data/areas.gpkg: street blocks of the bundled Helsinki extract as planning units.

The blocks are the faces of the extract's streets (motorways to residential streets and pedestrian
streets, no service roads or footpaths) inside a tight outline of the sample accounts, so that
the blocks cover the accounts' area without holes. Faces over ``MAX_BLOCK_M2`` are cut by a
``GRID_M`` grid; faces under ``MIN_BLOCK_M2`` are merged into the neighbour they share the
longest boundary with. Deterministic: same input, same layer.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
from pyproj import Transformer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from territory_planner_plugin.adjacency import tight_outline  # noqa: E402

CRS = "EPSG:3067"  # ETRS-TM35FIN, the national projected CRS of Finland (metres)
MIN_BLOCK_M2 = 1_500.0
MAX_BLOCK_M2 = 80_000.0  # larger faces are cut by a GRID_M grid ("sales blocks")
GRID_M = 200.0
STREETS = {
    "motorway", "motorway_link", "trunk", "trunk_link", "primary", "primary_link", "secondary",
    "secondary_link", "tertiary", "tertiary_link", "unclassified", "residential", "living_street",
    "pedestrian",
}  # fmt: skip
FAR_ACCOUNTS = ("A0501", "A0502")  # placed 2.5 km off the roads on purpose: outside every block


def street_lines(path: Path) -> list:
    """The street centre lines of the extract, projected to ``CRS``."""
    import osmium

    to_m = Transformer.from_crs("EPSG:4326", CRS, always_xy=True)
    lines = []
    for obj in osmium.FileProcessor(str(path)).with_locations():
        if not obj.is_way() or obj.tags.get("highway") not in STREETS:
            continue
        lonlat = [(n.location.lon, n.location.lat) for n in obj.nodes if n.location.valid()]
        if len(lonlat) >= 2:
            x, y = to_m.transform(*zip(*lonlat))
            lines.append(shapely.LineString(np.column_stack([x, y])))
    return lines


def _faces(lines: list, area: shapely.Geometry) -> np.ndarray:
    edges = shapely.union_all([*lines, shapely.boundary(area)])
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(edges)))
    return faces[shapely.contains(area, shapely.point_on_surface(faces))]


def _grid_lines(bounds, step: float) -> list:
    x0, y0, x1, y1 = (np.floor(np.asarray(bounds) / step) * step).tolist()
    xs = np.arange(x0, x1 + 2 * step, step)
    ys = np.arange(y0, y1 + 2 * step, step)
    vertical = [shapely.LineString([(x, ys[0]), (x, ys[-1])]) for x in xs]
    horizontal = [shapely.LineString([(xs[0], y), (xs[-1], y)]) for y in ys]
    return vertical + horizontal


def blocks(lines: list, area: shapely.Geometry) -> np.ndarray:
    """Faces of the streets and the outline inside the outline, small ones merged.

    Faces larger than ``MAX_BLOCK_M2`` (parts of the outline with no through street) are cut by
    a ``GRID_M`` grid, noded together with the streets so that neighbours share exact edges.
    """
    faces = _faces(lines, area)
    large = shapely.union_all(faces[shapely.area(faces) > MAX_BLOCK_M2])
    if not large.is_empty:
        # Overshoot 1 m so that each cut crosses the face's edge (then noded); the overshoot
        # ends inside the neighbour and is dropped by polygonize as a dangle.
        cuts = shapely.intersection(_grid_lines(large.bounds, GRID_M), shapely.buffer(large, 1.0))
        lines = [*lines, *[c for c in cuts if not c.is_empty]]
        faces = _faces(lines, area)
    faces = list(faces)
    merged = True
    np.seterr(invalid="ignore")  # GEOS flags some boundary intersections; results are fine
    while merged:
        merged = False
        areas = np.array([f.area for f in faces])
        for i in np.argsort(areas, kind="stable").tolist():
            if areas[i] >= MIN_BLOCK_M2:
                break
            shared = np.array([
                0.0 if j == i else shapely.intersection(faces[i].boundary, g.boundary).length
                for j, g in enumerate(faces)
            ])  # fmt: skip
            if shared.max() <= 0:  # an isolated small face (an islet): keep it
                continue
            j = int(np.argmax(shared))
            faces[j] = shapely.coverage_union_all([faces[j], faces[i]])
            del faces[i]
            merged = True
            break
    return np.array(faces, dtype=object)


def main() -> None:
    """Write sample_data/areas.gpkg (layer ``areas``)."""
    data = ROOT / "sample_data"
    accounts = gpd.read_file(data / "accounts.gpkg").to_crs(CRS)
    near = accounts[~accounts["id"].isin(FAR_ACCOUNTS)]
    area = tight_outline(shapely.get_coordinates(near.geometry.values))
    geoms = blocks(street_lines(data / "helsinki.osm.pbf"), area)
    centre = shapely.get_coordinates(shapely.point_on_surface(geoms))
    order = np.lexsort((centre[:, 1].round(), centre[:, 0].round()))  # west to east
    geoms = geoms[order]
    frame = gpd.GeoDataFrame({"area_id": [f"B{i + 1:03d}" for i in range(len(geoms))]},
                             geometry=list(geoms), crs=CRS)  # fmt: skip
    unit, acc_i = shapely.STRtree(geoms).query(near.geometry.values, predicate="intersects")
    first = np.unique(unit, return_index=True)[1]  # an account on a street goes to one block
    acc_idx, blk = unit[first], acc_i[first]
    counts = np.bincount(blk, minlength=len(geoms))
    revenue = np.zeros(len(geoms))
    np.add.at(revenue, blk, near["revenue_potential"].to_numpy(float)[acc_idx])
    area_m2 = shapely.area(geoms)
    frame["accounts"] = counts
    frame["revenue_potential"] = revenue.round(2)
    frame["potential"] = (revenue + 20_000.0).round(2)  # a base for blocks without accounts
    frame["population"] = np.round(area_m2 / 1000.0 * 15.0 + 40.0 * counts).astype(int)
    frame["area_km2"] = (area_m2 / 1e6).round(4)
    out = data / "areas.gpkg"
    out.unlink(missing_ok=True)
    os.environ["OGR_CURRENT_DATE"] = "2024-01-01T00:00:00Z"  # fixed timestamps in the GeoPackage
    frame.to_file(out, layer="areas", driver="GPKG")
    print(f"{out}: {len(frame)} blocks, {counts.sum()} of {len(accounts)} accounts inside")


if __name__ == "__main__":
    main()
