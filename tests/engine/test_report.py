import base64
import re
from html.parser import HTMLParser

import pandas as pd
import pytest

from territory_planner_plugin import report
from territory_planner_plugin.errors import InvalidInputError


@pytest.fixture
def accounts():
    return pd.DataFrame(
        {
            "id": range(6),
            "territory_id": ["A", "A", "B", "B", "C", "C"],
            "current_territory": ["A", "B", "B", "B", "C", "A"],
            "revenue_potential": [10.0, 10.0, 9.0, 12.0, 10.0, 9.0],
            "workload_visits": [1, 2, 2, 1, 1, 2],
        }
    )


def test_report_has_charts_kpis_disruption(accounts):
    out, summary = report.build_report(
        accounts,
        balance_fields=["revenue_potential", "workload_visits"],
        current_field="current_territory",
        map_png=b"\x89PNG fake",
        parameters={"TOLERANCE": 5},
    )
    assert summary.accounts.tolist() == [2, 2, 2]
    imgs = re.findall(r"src='data:image/png;base64,([^']+)'", out)
    assert len(imgs) == 3  # map + 2 charts
    assert all(base64.b64decode(i)[:4] == b"\x89PNG" for i in imgs)
    text = []

    class P(HTMLParser):
        def handle_data(self, d):
            text.append(d)

    P().feed(out)
    body = " ".join(text)
    assert "CV of revenue_potential" in body
    assert "< 0.10" in body
    assert "Accounts moved: 2 of 6" in body
    assert "revenue moved: 19" in body


def test_kpis_and_errors(accounts):
    k = report.kpis(accounts, territory_field="territory_id", balance_fields=["revenue_potential"])
    assert k["cv_revenue_potential"] == pytest.approx(
        pd.Series([20.0, 21.0, 19.0]).std(ddof=0) / 20.0
    )
    with pytest.raises(InvalidInputError, match="TERRITORY_FIELD"):
        report.build_report(accounts, territory_field="nope")
    with pytest.raises(InvalidInputError, match="empty"):
        report.build_report(accounts.iloc[:0])
