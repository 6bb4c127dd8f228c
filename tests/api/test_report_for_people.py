"""Issue 13, item 3: the md and html reports people read, from a real ledger on both stores.

Money in the ledger's locale, no partner ids, days instead of instants, the coalition's vision
and measures at the top, and each member's promises, overdue first; json and csv unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.api.conftest import Api

AS_OF = "2025-03-01T12:00:00Z"


@pytest.fixture
def coalition(api: Api) -> dict[str, str]:
    body = {
        "name": "River Alliance",
        "shared_vision": "Clean water for every household on the river.",
        "agreed_measures": ["Wells repaired", "Households reached"],
        "occurred_at": "2025-01-02T09:00:00Z",
    }
    response = api.client.post("/v1/coalitions", json=body, headers=api.steward)
    assert response.status_code == 201, response.text
    coalition_id = response.json()["id"]
    partner = api.register("Aurora Water Cooperative", occurred_at="2025-01-03T09:00:00Z")
    api.join(coalition_id, partner)

    def commit(cid: str, side: str, description: str, due: str) -> None:
        api.append(
            partner,
            "commitment_made",
            "2025-01-10T10:00:00Z",
            commitment_id=cid,
            owed_by=side,
            description=description,
            due_on=due,
            resource="time",
        )

    commit("c1", "partner", "Send the well survey", "2025-02-10")
    commit("c2", "us", "Share the budget", "2025-04-01")
    commit("c3", "us", "Pay the March stipend", "2025-02-01")
    commit("c4", "us", "Visit the east wells", "2025-02-20")
    api.append(partner, "commitment_fulfilled", "2025-02-13T10:00:00Z", commitment_id="c1")
    api.append(
        partner,
        "payment_made",
        "2025-01-20T10:00:00Z",
        amount="12750.50",
        currency="USD",
        purpose="stipend",
    )
    return {"coalition": coalition_id, "partner": partner}


def report(api: Api, coalition_id: str, fmt: str) -> str:
    response = api.get(f"/v1/coalitions/{coalition_id}/report", format=fmt, as_of=AS_OF)
    assert response.status_code == 200, response.text
    return response.text


@pytest.mark.parametrize("fmt", ["md", "html"])
def test_a_report_for_people_reads_at_a_glance(
    api: Api, coalition: dict[str, str], fmt: str
) -> None:
    text = report(api, coalition["coalition"], fmt).replace("\\$", "$")

    assert "$12,750.50" in text
    assert coalition["partner"] not in text
    assert "Mar 1, 2025" in text  # the reference date
    assert "2025-03-01T12:00:00.000000Z" in text  # the exact as_of, in the facts
    vision = text.index("Clean water for every household on the river.")
    assert vision < text.index("Wells repaired") < text.index("Households reached")
    assert text.index("Households reached") < text.index("Members")
    promises = text.split("Promises", 1)[1].split("Totals", 1)[0]
    # Overdue first (most days late first), then by due date; fulfilled late with its days.
    order = ["Pay the March stipend", "Visit the east wells", "Send the well survey"]
    assert [promises.index(p) for p in order] == sorted(promises.index(p) for p in order)
    assert promises.index("Send the well survey") < promises.index("Share the budget")
    for expected in ("Feb 1, 2025", "overdue", "28", "fulfilled late", "3", "open"):
        assert expected in promises


def test_json_and_csv_stay_as_they_were(api: Api, coalition: dict[str, str]) -> None:
    stated = api.read(f"/v1/coalitions/{coalition['coalition']}/report", as_of=AS_OF)
    csv_text = report(api, coalition["coalition"], "csv")

    assert set(stated["coalition"]) == {"id", "name"}
    assert all("promises" not in member for member in stated["members"])
    assert stated["members"][0]["payments"] == {"USD": "12750.50"}
    assert ",12750.50," in csv_text
    assert "$" not in csv_text
