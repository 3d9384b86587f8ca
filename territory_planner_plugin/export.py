"""Export a territory plan (territories or accounts) to GIS, Google Earth and CRM formats.

Every file is written to a temporary name in the target folder, then renamed, so a failed run
leaves no partial file behind. Text that does not fit a format is reported, never truncated.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import unicodedata
import zipfile
from xml.sax.saxutils import escape

import geopandas as gpd
import pandas as pd

from . import palette
from .errors import InvalidInputError

LOG = logging.getLogger(__name__)

FORMATS = ("ESRI Shapefile", "GPKG", "KML", "KMZ", "GeoJSON", "CSV")
EXTENSIONS = {
    "ESRI Shapefile": ".shp",
    "GPKG": ".gpkg",
    "KML": ".kml",
    "KMZ": ".kmz",
    "GeoJSON": ".geojson",
    "CSV": ".csv",
}
SHP_FIELD_LEN = 10
SHP_TEXT_LEN = 254
SHP_SIDECARS = (".shp", ".shx", ".dbf", ".prj", ".cpg")


def export_plan(
    gdf: gpd.GeoDataFrame,
    output: str,
    *,
    territory_field: str = "territory_id",
    fmt: str = "GPKG",
    split: bool = False,
    fields: tuple[str, ...] | list[str] = (),
    id_field: str = "id",
    rep_field: str = "rep_id",
) -> list[str]:
    """Write ``gdf`` to ``output`` in ``fmt``; return the written file paths.

    Parameters
    ----------
    gdf
        Territories or accounts; must hold ``territory_field``.
    output
        File path (its extension is replaced by the format's) or, with ``split``, a folder
        that receives one file per territory.
    fmt
        One of ``FORMATS``. ``CSV`` is the CRM import table: ``id_field``, territory,
        ``rep_field`` (when present) plus ``fields``.

    Raises
    ------
    InvalidInputError
        Unknown format or field, empty plan, unwritable output, text too long for a shapefile.
    """
    if fmt not in FORMATS:
        raise InvalidInputError(f"FORMAT {fmt!r} is not one of {', '.join(FORMATS)}.")
    if territory_field not in gdf.columns:
        raise InvalidInputError(
            f"TERRITORY_FIELD {territory_field!r} is not a field of the input; "
            f"fields are: {', '.join(map(str, gdf.columns))}."
        )
    if len(gdf) == 0:
        raise InvalidInputError("The plan is empty: the input has no features to export.")
    missing = [f for f in fields if f not in gdf.columns]
    if missing:
        raise InvalidInputError(f"FIELDS not in the input: {', '.join(missing)}.")
    gdf = gdf.copy()
    colours = _colours(gdf, territory_field)
    if split:
        folder = output
        os.makedirs(folder, exist_ok=True)
        groups = [(t, sub) for t, sub in gdf.groupby(territory_field, sort=True, dropna=False)]
        targets = [
            (os.path.join(folder, _safe_name(str(t)) + EXTENSIONS[fmt]), sub) for t, sub in groups
        ]
    else:
        folder = os.path.dirname(os.path.abspath(output)) or "."
        targets = [(os.path.splitext(output)[0] + EXTENSIONS[fmt], gdf)]
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        raise InvalidInputError(
            f"OUTPUT folder {folder!r} does not exist or is not writable; choose another."
        )
    written = []
    for path, sub in targets:
        _write_one(
            sub,
            path,
            fmt=fmt,
            territory_field=territory_field,
            colours=colours,
            fields=fields,
            id_field=id_field,
            rep_field=rep_field,
        )
        written.append(path)
    return written


def shorten_field_names(names: list[str], *, max_len: int = SHP_FIELD_LEN) -> dict[str, str]:
    """Map each name to a unique name of at most ``max_len`` characters (case-insensitive)."""
    out: dict[str, str] = {}
    seen: set[str] = set()
    for name in names:
        short = name[:max_len]
        n = 1
        while short.lower() in seen:
            suffix = f"_{n}"
            short = name[: max_len - len(suffix)] + suffix
            n += 1
        seen.add(short.lower())
        out[name] = short
    return out


def _colours(gdf: gpd.GeoDataFrame, territory_field: str) -> dict:
    keys = sorted(gdf[territory_field].dropna().unique().tolist(), key=str)
    adj = None
    if gdf.geom_type.isin(["Polygon", "MultiPolygon"]).all():
        dissolved = gdf.dissolve(by=territory_field)
        adj = palette.adjacency_from_geometries(dict(zip(dissolved.index, dissolved.geometry)))
    return palette.assign_colours(keys, adj)


def _safe_name(text: str) -> str:
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode() or "territory"
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def _write_one(gdf, path, *, fmt, territory_field, colours, fields, id_field, rep_field) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    tmpdir = tempfile.mkdtemp(prefix=".tp_export_", dir=folder)
    try:
        tmp = os.path.join(tmpdir, os.path.basename(path))
        if fmt == "ESRI Shapefile":
            _write_shapefile(gdf, tmp)
        elif fmt == "GPKG":
            gdf.to_file(
                tmp,
                driver="GPKG",
                layer=os.path.splitext(os.path.basename(path))[0],
                engine="pyogrio",
            )
        elif fmt == "GeoJSON":
            gdf.to_crs(4326).to_file(tmp, driver="GeoJSON", engine="pyogrio", RFC7946="YES")
        elif fmt == "CSV":
            cols = [c for c in (id_field, territory_field, rep_field) if c in gdf.columns]
            cols += [f for f in fields if f not in cols]
            pd.DataFrame(gdf[cols]).to_csv(tmp, index=False, encoding="utf-8")
        else:
            kml = _kml(gdf, territory_field, colours)
            if fmt == "KML":
                with open(tmp, "w", encoding="utf-8") as fh:
                    fh.write(kml)
            else:
                with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
                    zf.writestr("doc.kml", kml)
        # move every produced file (shapefile sidecars too) into place
        for name in os.listdir(tmpdir):
            os.replace(os.path.join(tmpdir, name), os.path.join(folder, name))
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def _write_shapefile(gdf: gpd.GeoDataFrame, tmp: str) -> None:
    too_long = []
    for col in gdf.columns:
        if col == gdf.geometry.name or not (
            pd.api.types.is_string_dtype(gdf[col]) or gdf[col].dtype == object
        ):
            continue
        lens = gdf[col].dropna().astype(str).map(lambda s: len(s.encode("utf-8")))
        if len(lens) and lens.max() > SHP_TEXT_LEN:
            too_long.append(f"{col} ({int(lens.max())} bytes)")
    if too_long:
        raise InvalidInputError(
            f"Text longer than the shapefile limit of {SHP_TEXT_LEN} bytes in: {', '.join(too_long)}. "
            "Choose GeoPackage or GeoJSON, or shorten those values."
        )
    names = [c for c in gdf.columns if c != gdf.geometry.name]
    mapping = shorten_field_names(names)
    renamed = {k: v for k, v in mapping.items() if k != v}
    if renamed:
        LOG.warning(
            "Shapefile field names shortened: %s",
            ", ".join(f"{k} -> {v}" for k, v in renamed.items()),
        )
    out = gdf.rename(columns=mapping)
    out.to_file(tmp, driver="ESRI Shapefile", engine="pyogrio", encoding="UTF-8")
    base = os.path.splitext(tmp)[0]
    with open(base + ".cpg", "w", encoding="ascii") as fh:
        fh.write("UTF-8")
    pd.DataFrame({"short_name": list(mapping.values()), "full_name": list(mapping.keys())}).to_csv(
        base + "_fields.csv", index=False, encoding="utf-8"
    )
    aliases = "".join(
        f'<alias field="{escape(s, {chr(34): "&quot;"})}" index="{i}" name="{escape(f, {chr(34): "&quot;"})}"/>'
        for i, (f, s) in enumerate(mapping.items())
    )
    with open(base + ".qml", "w", encoding="utf-8") as fh:
        fh.write(
            f'<!DOCTYPE qgis>\n<qgis version="3.22" styleCategories="Fields"><aliases>{aliases}</aliases></qgis>\n'
        )


def _kml(gdf: gpd.GeoDataFrame, territory_field: str, colours: dict) -> str:
    g = gdf.to_crs(4326)
    styles = []
    for key, col in colours.items():
        sid = "t_" + _safe_name(str(key))
        styles.append(
            f'<Style id="{sid}"><LineStyle><color>{palette.kml_colour(col)}</color><width>2</width></LineStyle>'
            f"<PolyStyle><color>{palette.kml_colour(col, 128)}</color></PolyStyle>"
            f"<IconStyle><color>{palette.kml_colour(col)}</color></IconStyle></Style>"
        )
    marks = []
    attr_cols = [c for c in g.columns if c != g.geometry.name]
    for _, row in g.iterrows():
        key = row[territory_field]
        data = "".join(
            f'<Data name="{escape(str(c))}"><value>{escape("" if pd.isna(row[c]) else str(row[c]))}</value></Data>'
            for c in attr_cols
        )
        marks.append(
            f"<Placemark><name>{escape(str(key))}</name><styleUrl>#t_{_safe_name(str(key))}</styleUrl>"
            f"<ExtendedData>{data}</ExtendedData>{_kml_geom(row.geometry)}</Placemark>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<kml xmlns="http://www.opengis.net/kml/2.2"><Document>'
        + "".join(styles)
        + "".join(marks)
        + "</Document></kml>\n"
    )


def _coords(seq) -> str:
    return " ".join(f"{x:.7f},{y:.7f}" for x, y, *_ in seq)


def _kml_geom(geom) -> str:
    if geom is None or geom.is_empty:
        return ""
    t = geom.geom_type
    if t == "Point":
        return f"<Point><coordinates>{_coords(geom.coords)}</coordinates></Point>"
    if t == "LineString":
        return f"<LineString><coordinates>{_coords(geom.coords)}</coordinates></LineString>"
    if t == "Polygon":
        inner = "".join(
            f"<innerBoundaryIs><LinearRing><coordinates>{_coords(r.coords)}</coordinates></LinearRing></innerBoundaryIs>"
            for r in geom.interiors
        )
        return (
            f"<Polygon><outerBoundaryIs><LinearRing><coordinates>{_coords(geom.exterior.coords)}"
            f"</coordinates></LinearRing></outerBoundaryIs>{inner}</Polygon>"
        )
    return "<MultiGeometry>" + "".join(_kml_geom(g) for g in geom.geoms) + "</MultiGeometry>"
