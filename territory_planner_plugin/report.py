"""Self-contained HTML report of a territory plan: KPIs against targets, balance charts, disruption.

Takes any accounts table with a territory field; the map comes in as PNG bytes (rendered by the
QGIS wrapper). Charts use matplotlib's Agg backend; images are embedded as base64.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .errors import InvalidInputError

TARGETS = {"revenue_cv": 0.10, "workload_cv": 0.15, "travel_efficiency": 0.75}
PROSPECTS_RANGE = (80, 120)


def territory_summary(
    accounts: pd.DataFrame, *, territory_field: str, balance_fields: Sequence[str] = ()
) -> pd.DataFrame:
    """One row per territory: ``accounts`` count and the total of each balance field."""
    _check(accounts, territory_field, balance_fields)
    grouped = accounts.groupby(territory_field, sort=True, dropna=True)
    out = pd.DataFrame({"accounts": grouped.size()})
    for f in balance_fields:
        out[f"{f}_total"] = grouped[f].sum()
    if "active_prospect" in accounts.columns:
        out["active_prospects"] = grouped["active_prospect"].apply(
            lambda s: int(pd.to_numeric(s, errors="coerce").fillna(0).astype(bool).sum())
        )
    out.index.name = territory_field
    return out.reset_index()


def kpis(
    accounts: pd.DataFrame,
    *,
    territory_field: str,
    balance_fields: Sequence[str] = (),
    current_field: str | None = None,
    revenue_field: str | None = None,
) -> dict[str, float]:
    """Coefficient of variation per balance field (``cv_<field>``), accounts and revenue moved."""
    summary = territory_summary(
        accounts, territory_field=territory_field, balance_fields=balance_fields
    )
    out: dict[str, float] = {"territories": float(len(summary))}
    for f in balance_fields:
        totals = summary[f"{f}_total"].astype(float)
        out[f"cv_{f}"] = (
            float(totals.std(ddof=0) / totals.mean()) if totals.mean() else float("nan")
        )
    if current_field:
        _check(accounts, current_field, ())
        moved = accounts[territory_field].astype(str) != accounts[current_field].astype(str)
        out["accounts_moved"] = float(moved.sum())
        if revenue_field and revenue_field in accounts.columns:
            out["revenue_moved"] = float(accounts.loc[moved, revenue_field].sum())
    return out


def build_report(
    accounts: pd.DataFrame,
    *,
    territory_field: str = "territory_id",
    balance_fields: Sequence[str] = (),
    current_field: str | None = None,
    tolerance_pct: float = 5.0,
    map_png: bytes | None = None,
    parameters: Mapping[str, object] | None = None,
    title: str = "Territory plan report",
) -> tuple[str, pd.DataFrame]:
    """Return ``(html, summary)``; the HTML embeds every image (base64) and needs no other file."""
    if len(accounts) == 0:
        raise InvalidInputError("ACCOUNTS is empty: there is nothing to report.")
    summary = territory_summary(
        accounts, territory_field=territory_field, balance_fields=balance_fields
    )
    revenue = next((f for f in balance_fields if "revenue" in f), None)
    k = kpis(
        accounts,
        territory_field=territory_field,
        balance_fields=balance_fields,
        current_field=current_field,
        revenue_field=revenue,
    )
    parts = [html_head(title)]
    if map_png:
        parts.append(
            f"<h2>Map</h2><img id='map' alt='territory map' src='{png_data_uri(map_png)}'>"
        )
    parts.append(
        "<h2>KPIs against targets</h2><table id='kpis'><tr><th>KPI</th><th>Value</th><th>Target</th><th>Status</th></tr>"
    )
    for f in balance_fields:
        target = cv_target(f)
        value = k[f"cv_{f}"]
        status = "" if target is None else ("ok" if value < target else "bad")
        parts.append(
            f"<tr><td>CV of {html.escape(f)}</td><td>{value:.3f}</td><td>{'' if target is None else f'&lt; {target:.2f}'}</td>"
            f"<td class='{status}'>{ {'ok': 'met', 'bad': 'missed', '': '-'}[status] }</td></tr>"
        )
    parts.append("</table>")
    parts.append(
        "<h2>Accounts per territory</h2>"
        + summary.to_html(index=False, table_id="summary", float_format=lambda v: f"{v:,.1f}")
    )
    if "active_prospects" in summary.columns:
        lo, hi = PROSPECTS_RANGE
        outside = summary[(summary.active_prospects < lo) | (summary.active_prospects > hi)]
        parts.append(
            f"<p id='prospects'>Guidance: {lo}-{hi} active prospects per territory; "
            f"{len(outside)} of {len(summary)} territories outside.</p>"
        )
    for f in balance_fields:
        parts.append(
            f"<h2>Balance: {html.escape(f)}</h2><img class='chart' alt='{html.escape(f)} chart' src='"
            + png_data_uri(_bar_chart(summary, territory_field, f"{f}_total", tolerance_pct))
            + "'>"
        )
    if current_field:
        parts.append(
            f"<h2>Disruption</h2><p id='disruption'>Accounts moved: {int(k['accounts_moved'])} of {len(accounts)}"
            + (f"; revenue moved: {k['revenue_moved']:,.0f}" if "revenue_moved" in k else "")
            + "</p>"
        )
    if parameters:
        rows = "".join(
            f"<tr><td>{html.escape(str(a))}</td><td>{html.escape(str(b))}</td></tr>"
            for a, b in parameters.items()
        )
        parts.append(f"<h2>Parameters</h2><table id='parameters'>{rows}</table>")
    parts.append("</body></html>")
    return "".join(parts), summary


def cv_target(field: str) -> float | None:
    """The published CV target of a balance field (revenue < 0.10, workload/visits < 0.15), or None."""
    if "revenue" in field:
        return TARGETS["revenue_cv"]
    if "workload" in field or "visit" in field:
        return TARGETS["workload_cv"]
    return None


def html_head(title: str) -> str:
    """Start of a report page: doctype, title, the shared style and the ``<h1>``."""
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #999;padding:3px 8px}.ok{color:#006d2c}.bad{color:#b30000}</style>"
        f"</head><body><h1>{html.escape(title)}</h1>"
    )


def png_data_uri(png: bytes) -> str:
    """A ``data:image/png;base64,...`` URI, to embed an image in a self-contained page."""
    return "data:image/png;base64," + base64.b64encode(png).decode()


def agg_figure(width: float, height: float):
    """A matplotlib Figure on the Agg backend (no GUI, safe in worker threads)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100)


def figure_png(fig) -> bytes:
    """PNG bytes of a matplotlib Figure (tight layout)."""
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _check(df: pd.DataFrame, field: str, others: Sequence[str]) -> None:
    for name, key in [(field, "TERRITORY_FIELD")] + [(f, "BALANCE_FIELDS") for f in others]:
        if name not in df.columns:
            raise InvalidInputError(
                f"{key}: field {name!r} is not in the accounts; fields are {', '.join(map(str, df.columns))}."
            )


def _bar_chart(
    summary: pd.DataFrame, territory_field: str, column: str, tolerance_pct: float
) -> bytes:
    from . import palette

    values = summary[column].astype(float).to_numpy()
    labels = summary[territory_field].astype(str).tolist()
    target = float(np.mean(values)) if len(values) else 0.0
    colours = palette.assign_colours(labels)
    fig = agg_figure(7, 3.5)
    ax = fig.subplots()
    ax.axhspan(
        target * (1 - tolerance_pct / 100),
        target * (1 + tolerance_pct / 100),
        color="#cccccc",
        alpha=0.6,
        label=f"target ±{tolerance_pct:g}%",
    )
    ax.bar(labels, values, color=[colours[x] for x in labels], edgecolor="#333333")
    ax.axhline(target, color="black", lw=1, ls="--", label="target (mean)")
    ax.set_ylabel(column)
    ax.legend(loc="lower right", fontsize=8)
    return figure_png(fig)
