"""Rules across keys of a request body are declared with its model, enforced on a real server.

Each rule of :mod:`alphaswarm.server.requests` (``RULES``) is broken over HTTP: the
answer is a 422 whose ``fields`` names every key of the rule, nothing is written to
the ledger, and ``/openapi.json`` states the rule next to the body's schema.
"""

from __future__ import annotations

import pytest

from alphaswarm.schema import validate
from alphaswarm.server.demo import DEMO_SPEC
from alphaswarm.server.requests import REQUEST_MODELS, BacktestRequest, PaperRequest
from tests.server.test_errors import assert_error, counts


@pytest.fixture
def bot_id(api) -> str:
    """A bot registered through the API (no backtest: every request here is refused)."""
    r = api.post("/bots", {**DEMO_SPEC, "name": "rules-bot"})
    assert r.status_code in (200, 201), r.text
    return r.json()["bot_id"]


@pytest.mark.parametrize(
    ("path", "body", "keys", "words"),
    [
        ("backtest", {"start": "2024-02-01", "end": "2024-01-01"}, {"start", "end"},
         ("start", "after end")),
        ("paper", {"force": True}, {"force", "reason"}, ("reason", "non-empty")),
        ("paper", {"force": True, "reason": "   "}, {"force", "reason"}, ("reason",)),
    ],
)  # fmt: skip
def test_a_broken_rule_is_a_422_naming_its_fields(api, bot_id, server_ledger, path, body, keys,
                                                  words):  # fmt: skip
    before = counts(server_ledger)
    answer = assert_error(api.post(f"/bots/{bot_id}/{path}", body), 422, *words)
    assert set(answer["fields"]) == keys, answer
    assert counts(server_ledger) == before


def test_rules_are_checked_beside_the_other_problems(api, bot_id):
    body = {"start": "2024-02-01", "end": "2024-01-01", "starting_cash": 0}
    answer = assert_error(api.post(f"/bots/{bot_id}/backtest", body), 422, "after end")
    assert set(answer["fields"]) == {"start", "end", "starting_cash"}, answer


def test_a_rule_over_a_key_that_is_wrong_on_its_own_is_not_checked(api, bot_id):
    body = {"start": "2024-13-01", "end": "2024-01-01"}
    answer = assert_error(api.post(f"/bots/{bot_id}/backtest", body), 422, "2024-13-01")
    assert set(answer["fields"]) == {"start"}, answer


def test_bodies_that_keep_the_rules_pass_validation():
    assert validate(BacktestRequest, {"start": "2024-01-01", "end": "2024-01-01"})[1] == []
    # a time zone on one side only is compared in UTC, not refused as incomparable
    aware = {"start": "2024-01-01T10:00+02:00", "end": "2024-01-01T08:30"}
    assert validate(BacktestRequest, aware)[1] == []
    assert validate(BacktestRequest, {**aware, "end": "2024-01-01T07:30"})[1][0].field == "start"
    assert validate(PaperRequest, {"force": True, "reason": "a test"})[1] == []
    assert validate(PaperRequest, {"force": False})[1] == []


def test_openapi_states_each_declared_rule(api):
    schemas = api.get("/openapi.json").json()["components"]["schemas"]
    stated = {name: schemas[name].get("x-rules", []) for name in REQUEST_MODELS}
    assert stated["BacktestRequest"] == [{"fields": ["start", "end"],
                                          "rule": "start is not after end"}]  # fmt: skip
    assert stated["PaperRequest"] == [{"fields": ["reason", "force"],
                                       "rule": "force needs a non-empty reason"}]  # fmt: skip
    assert all(not rules for name, rules in stated.items()
               if name not in ("BacktestRequest", "PaperRequest"))  # fmt: skip
