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
import pyogrio

from . import _validate, palette
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
ENCODINGS = ("utf-8", "utf-8-sig")  # CRM CSV: plain, or with a byte-order mark for Excel
INTERNAL_FIELDS = ("fid", "ogc_fid", "colour")  # not carried as data into KML


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
    encoding: str = "utf-8",
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
        ``rep_field`` (when present), ``previous_territory_id`` and ``changed`` (when the input
        is an accounts output that has them) plus ``fields``.
    id_field, rep_field
        Account id (required for ``CSV``) and rep field (optional; used in CSV and KML names).
    encoding
        ``CSV`` only: ``"utf-8"`` or ``"utf-8-sig"`` (with a byte-order mark, for Excel).

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
    if fmt == "CSV" and id_field not in gdf.columns:
        raise InvalidInputError(
            f"ID_FIELD {id_field!r} is not a field of the input, so the CRM CSV would have no "
            f"account ids; choose the account id field (fields: {', '.join(map(str, gdf.columns))})."
        )
    if encoding not in ENCODINGS:
        raise InvalidInputError(f"ENCODING {encoding!r} is not one of {', '.join(ENCODINGS)}.")
    gdf = gdf.copy()
    if fmt != "CSV":
        _warn_missing_geometry(gdf, id_field, fmt)
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
            encoding=encoding,
        )
        written.append(path)
    return written


def _warn_missing_geometry(gdf: gpd.GeoDataFrame, id_field: str, fmt: str) -> None:
    """Log the features without a geometry (by id when ``id_field`` is a field): they are
    written without a location, so a map or a KML viewer does not show them."""
    count, where = _validate.without_geometry(gdf, id_field)
    if not count:
        return
    shown = ("KML viewers (Google Earth) do not show them" if fmt in ("KML", "KMZ")
             else "maps do not show them")  # fmt: skip
    LOG.warning(
        "INPUT: %d of %d features have a NULL or empty geometry: %s. They are written without a "
        "location (%s); give them a location or filter them out (Select by Expression: "
        "is_empty_or_null($geometry)) to map every feature.",
        count,
        len(gdf),
        where,
        shown,
    )


def shorten_field_names(names: list[str], *, max_len: int = SHP_FIELD_LEN) -> dict[str, str]:
    """Map each name to a unique name of at most ``max_len`` UTF-8 bytes (case-insensitive).

    Names are cut between characters, never inside one; a name that collides with an earlier
    one gets ``_1``, ``_2``, ... in place of its last characters.
    """
    out: dict[str, str] = {}
    seen: set[str] = set()
    for name in names:
        short = _cut_bytes(name, max_len) or "field"
        n = 1
        while short.lower() in seen:
            suffix = f"_{n}"
            short = _cut_bytes(name, max_len - len(suffix)) + suffix
            n += 1
        seen.add(short.lower())
        out[name] = short
    return out


def _cut_bytes(text: str, max_bytes: int) -> str:
    """The longest start of ``text`` that fits in ``max_bytes`` UTF-8 bytes."""
    out, used = [], 0
    for ch in text:
        size = len(ch.encode("utf-8"))
        if used + size > max_bytes:
            break
        out.append(ch)
        used += size
    return "".join(out)


# what each field of a plan output holds; other fields are described from their name's unit
FIELD_DESCRIPTIONS = {
    "territory_id": ("", "territory id"),
    "rep_id": ("", "rep id of the territory"),
    "centre_km": ("km", "straight-line distance from the {row} to its territory's centre"),
    "centre_min": ("min", "drive time from the {row} to its territory's centre"),
    "locked": ("", "true when LOCK_FIELD fixed the {row}'s territory"),
    "moved": ("", "true when the {row} changed territory against CURRENT_FIELD"),
    "previous_territory_id": ("", "territory the {row} left (empty when not moved)"),
    "next_best_id": ("", "best territory other than its own"),
    "next_best_extra_min": ("min", "how much farther the next best territory's centre is (>= 0)"),
    "next_best_extra_km": ("km", "how much farther the next best territory's centre is (>= 0)"),
    "nearest_saving_min": ("min", "how much nearer the nearest territory's centre is (0 when its own)"),
    "nearest_saving_km": ("km", "how much nearer the nearest territory's centre is (0 when its own)"),
    "reason": ("", "rule that decided the territory"),
    "explanation": ("", "why the {row} is in its territory, in plain words"),
    "accounts": ("count", "number of accounts"),
    "unit_id": ("", "id of the area (UNITS) the account counts in"),
    "units": ("count", "number of areas (UNITS) in the territory"),
    "pieces": ("count", "connected pieces of the territory (1 = in one piece)"),
    "capacity": ("", "rep capacity (1 = a full share)"),
    "travel_total": ("min or km", "total distance from the accounts to the centre"),
    "quota": ("", "quota share of the territory"),
    "colour": ("", "territory colour (#RRGGBB)"),
}  # fmt: skip
_UNIT_SUFFIXES = (("_pct", "%"), ("_km", "km"), ("_min", "min"), ("_m", "m"), ("_s", "s"))


_SUMMED = ("centre_km", "centre_min", "next_best_extra_km", "next_best_extra_min",
           "nearest_saving_km", "nearest_saving_min")  # fmt: skip


def describe_field(
    name: str, dtype: object = None, *, row: str = "account", summed: bool = False
) -> tuple[str, str]:
    """(unit, description) of a plan output field, for the shapefile's data dictionary; ``row``
    is what a feature is ("account", or "area" for the units of a plan of areas); ``summed``:
    the areas' distances are the sums of their accounts' (a plan of areas with accounts)."""
    if summed and name == "accounts":
        return "count", "number of accounts counted in the area"
    if name in FIELD_DESCRIPTIONS:
        unit, text = FIELD_DESCRIPTIONS[name]
        if summed and name in _SUMMED:
            text += ", summed over the area's accounts"
        return unit, text.format(row=row)
    unit = next((u for suffix, u in _UNIT_SUFFIXES if name.endswith(suffix)), "")
    base = name
    for suffix in ("_dev_pct", "_total", "_target"):
        if name.endswith(suffix):
            base = name[: -len(suffix)]
            break
    if name.endswith("_dev_pct"):
        return "%", f"deviation of {base} from the territory's target"
    if name.endswith("_total"):
        return unit, f"total {base} of the territory"
    if name.endswith("_target"):
        return unit, f"target {base} of the territory"
    if name.startswith("input_"):
        kept = re.sub(r"_\d+$", "", name[6:])
        return unit, f"input field {kept} (renamed: the plan writes a field of that name)"
    kind = "number" if dtype is not None and pd.api.types.is_numeric_dtype(dtype) else "text"
    return unit, f"input field ({kind})"


def _colours(gdf: gpd.GeoDataFrame, territory_field: str) -> dict:
    """Territory -> colour: the plan's ``colour`` field where present, else the palette."""
    keys = sorted(gdf[territory_field].dropna().unique().tolist(), key=str)
    stored = palette.colours_from_table(gdf, territory_field=territory_field)
    if keys and all(str(k) in stored for k in keys):
        return {k: stored[str(k)] for k in keys}
    adj = None
    if gdf.geom_type.isin(["Polygon", "MultiPolygon"]).all():
        dissolved = gdf.dissolve(by=territory_field)
        adj = palette.adjacency_from_geometries(dict(zip(dissolved.index, dissolved.geometry)))
    existing = {k: stored[str(k)] for k in keys if str(k) in stored}
    return palette.plan_colours(keys, adjacency=adj, existing=existing)


def _safe_name(text: str) -> str:
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode() or "territory"
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def _write_one(gdf, path, *, fmt, territory_field, colours, fields, id_field, rep_field,
               encoding) -> None:  # fmt: skip
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
            _crm_table(gdf, territory_field, fields, id_field, rep_field).to_csv(
                tmp, index=False, encoding=encoding
            )
        else:
            kml = _kml(gdf, territory_field, colours, rep_field)
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
    # the dictionary is read from the file written, so it names exactly the fields in it
    written = list(pyogrio.read_info(tmp, encoding="UTF-8")["fields"])
    if len(written) != len(names):
        raise InvalidInputError(
            f"The shapefile was written with {len(written)} fields instead of {len(names)}; "
            "choose GeoPackage."
        )
    rows = []
    # the units output of a plan of areas: polygons explained one by one
    row = "area" if "reason" in gdf.columns and gdf.geom_type.isin(
        ["Polygon", "MultiPolygon"]).all() else "account"  # fmt: skip
    summed = row == "area" and "accounts" in gdf.columns  # (its accounts' distances, summed)
    for short, full in zip(written, names):
        unit, text = describe_field(full, gdf[full].dtype, row=row, summed=summed)
        rows.append({"short_name": short, "full_name": full, "unit": unit, "description": text})
    pd.DataFrame(rows, columns=["short_name", "full_name", "unit", "description"]).to_csv(
        base + "_fields.csv", index=False, encoding="utf-8"
    )
    q = {chr(34): "&quot;"}
    aliases = "".join(
        f'<alias field="{escape(r["short_name"], q)}" index="{i}" name="{escape(r["full_name"], q)}"/>'
        for i, r in enumerate(rows)
    )
    with open(base + ".qml", "w", encoding="utf-8") as fh:
        fh.write(
            f'<!DOCTYPE qgis>\n<qgis version="3.22" styleCategories="Fields"><aliases>{aliases}</aliases></qgis>\n'
        )


def _crm_table(gdf, territory_field, fields, id_field, rep_field) -> pd.DataFrame:
    """The CRM import table: id, territory, rep, previous territory and changed flag, FIELDS."""
    cols = [c for c in (id_field, territory_field, rep_field) if c in gdf.columns]
    table = pd.DataFrame(gdf[cols])
    if "previous_territory_id" in gdf.columns or "moved" in gdf.columns:
        prev = gdf.get("previous_territory_id")
        prev = prev.where(prev.notna(), None) if prev is not None else None
        if "moved" in gdf.columns:
            changed = gdf["moved"].fillna(False).astype(bool)
        else:
            changed = prev.notna() & (prev.astype(str) != gdf[territory_field].astype(str))
        table["previous_territory_id"] = prev if prev is not None else None
        table["changed"] = changed.to_numpy()
    for f in fields:
        if f not in table.columns:
            table[f] = gdf[f].to_numpy()
    return table


def _kml(gdf: gpd.GeoDataFrame, territory_field: str, colours: dict, rep_field: str) -> str:
    """KML: one style per territory (its colour), typed ExtendedData without internal ids."""
    g = gdf.to_crs(4326)
    styles = []
    for key, col in colours.items():
        sid = "t_" + _safe_name(str(key))
        styles.append(
            f'<Style id="{sid}"><LineStyle><color>{palette.kml_colour(col)}</color><width>2</width></LineStyle>'
            f"<PolyStyle><color>{palette.kml_colour(col, 128)}</color></PolyStyle>"
            f"<IconStyle><color>{palette.kml_colour(col)}</color></IconStyle></Style>"
        )
    attr_cols = [
        c for c in g.columns if c != g.geometry.name and str(c).lower() not in INTERNAL_FIELDS
    ]
    types = {c: _kml_type(g[c]) for c in attr_cols}
    schema = '<Schema name="plan" id="plan">' + "".join(
        f'<SimpleField type="{types[c]}" name="{escape(str(c), {chr(34): "&quot;"})}"/>'
        for c in attr_cols
    ) + "</Schema>"  # fmt: skip
    has_rep = rep_field in g.columns and rep_field != territory_field
    marks = []
    for _, row in g.iterrows():
        key = row[territory_field]
        name = str(key)
        if has_rep and not pd.isna(row[rep_field]) and str(row[rep_field]) != name:
            name = f"{name} ({row[rep_field]})"
        data = "".join(
            f'<SimpleData name="{escape(str(c), {chr(34): "&quot;"})}">{escape(_kml_value(row[c], types[c]))}</SimpleData>'
            for c in attr_cols
            if not _missing(row[c])
        )
        marks.append(
            f"<Placemark><name>{escape(name)}</name><styleUrl>#t_{_safe_name(str(key))}</styleUrl>"
            f'<ExtendedData><SchemaData schemaUrl="#plan">{data}</SchemaData></ExtendedData>'
            f"{_kml_geom(row.geometry)}</Placemark>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<kml xmlns="http://www.opengis.net/kml/2.2"><Document>'
        + schema
        + "".join(styles)
        + "".join(marks)
        + "</Document></kml>\n"
    )


def _kml_type(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series.dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(series.dtype):
        return "int"
    if pd.api.types.is_float_dtype(series.dtype):
        return "double"
    sample = [v for v in series if not _missing(v)]
    if sample and all(isinstance(v, bool) for v in sample):
        return "bool"
    return "string"


def _kml_value(value, kind: str) -> str:
    if kind == "bool":
        return "true" if bool(value) else "false"
    if kind == "int":
        return str(int(value))
    if kind == "double":
        return f"{float(value):.10g}"
    return str(value)


def _missing(value) -> bool:
    try:
        return value is None or bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


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
