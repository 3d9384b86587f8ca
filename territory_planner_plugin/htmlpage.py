"""Shared pieces of the self-contained HTML pages (report, comparison): page head with the screen
and print style, embedded PNGs, matplotlib figures on the Agg backend, number formats."""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import math

import numpy as np

STYLE = """
body{font-family:'DejaVu Sans',Arial,sans-serif;margin:2em;color:#222;max-width:1100px}
h1{margin-bottom:.2em}h2{margin-top:1.6em;border-bottom:1px solid #ccc}
.facts{color:#444;margin:.2em 0 1em}
table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #999;padding:3px 8px;text-align:left}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
th{background:#f0f0f0}
.ok{color:#006d2c;font-weight:bold}.bad{color:#b30000;font-weight:bold}
.swatch{display:inline-block;width:.9em;height:.9em;border:1px solid #333;margin-right:.4em;
vertical-align:-.1em}
img{max-width:100%}.note{color:#555;font-size:90%}
@media print{
body{margin:1cm;max-width:none;font-size:10pt}
h1,h2,h3{break-after:avoid;page-break-after:avoid}
table,tr,img,figure,.keep{break-inside:avoid;page-break-inside:avoid}
thead{display:table-header-group}
img{max-height:24cm}
}
"""


def html_head(title: str, *, subtitle: str | None = None) -> str:
    """Start of a page: doctype, title, the shared style, the ``<h1>`` and the date line."""
    today = dt.date.today().isoformat()
    facts = f"Made on {today}" + (f" · {html.escape(subtitle)}" if subtitle else "")
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p class='facts' id='made'>{facts}</p>"
    )


def png_data_uri(png: bytes) -> str:
    """A ``data:image/png;base64,...`` URI, to embed an image in a self-contained page."""
    return "data:image/png;base64," + base64.b64encode(png).decode()


def agg_figure(width: float, height: float, *, dpi: int = 100):
    """A matplotlib Figure on the Agg backend (no GUI, safe in worker threads)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=dpi)


def figure_png(fig, *, tight: bool = True) -> bytes:
    """PNG bytes of a matplotlib Figure."""
    if tight:
        fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def finite(value) -> bool:
    """True for a number that is not NaN or infinite."""
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def fmt(value, *, digits: int | None = None) -> str:
    """A readable number: thousands separators, 3 decimals below 10, 1 above; ``-`` for NaN."""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if finite(value):
        v = float(value)
        if digits is not None:
            return f"{v:,.{digits}f}"
        if v.is_integer() and abs(v) >= 10:
            return f"{v:,.0f}"
        return f"{v:.3f}" if abs(v) < 10 else f"{v:,.1f}"
    if value is None or isinstance(value, (float, np.floating)):
        return "-"
    return html.escape(str(value))


def table(header, rows, *, table_id: str | None = None, numeric=()) -> str:
    """An HTML table from cells already escaped/formatted; ``numeric`` = column indexes to
    right-align."""
    ident = f" id='{table_id}'" if table_id else ""
    head = "".join(
        f"<th class='num'>{h}</th>" if i in numeric else f"<th>{h}</th>"
        for i, h in enumerate(header)
    )
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            css = "num" if i in numeric else ""
            if isinstance(cell, tuple):  # (text, class)
                cell, extra = cell
                css = f"{css} {extra}".strip()
            cells.append(f"<td class='{css}'>{cell}</td>" if css else f"<td>{cell}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def bullet_list(items, *, list_id: str) -> str:
    """``<ul id=...>`` of the ``items`` as escaped text ('' when there are none)."""
    if not items:
        return ""
    return (
        f"<ul id='{list_id}'>" + "".join(f"<li>{html.escape(str(i))}</li>" for i in items) + "</ul>"
    )
