"""Request bodies: JSON, YAML, and YAML whose newlines ``curl -d @file`` stripped."""

from __future__ import annotations

import pytest

from alphaswarm.bots import Bot
from alphaswarm.server.body import parse_body, restore_newlines
from alphaswarm.server.errors import ApiError

SPEC = """name: sma
strategy: sma_cross
params:
  fast: 5
  slow: 20
universe:
- DEMO
risk:
  max_order_notional: 1000
  kill_switch_attached: true
metrics:
  - sharpe
  - name: max_drawdown
    threshold: 0.2
description: "a bot - with: colons"
"""


def test_json_first_then_yaml():
    assert parse_body(b'{"a": 1}') == {"a": 1}
    assert parse_body(b"a: 1\nb: [x]") == {"a": 1, "b": ["x"]}
    assert parse_body(b"", required=False) == {}
    with pytest.raises(ApiError) as info:
        parse_body(b"")
    assert info.value.status == 400


def test_stripped_newlines_are_restored():
    stripped = SPEC.replace("\n", "").encode()
    assert parse_body(stripped, bot_spec=True) == parse_body(SPEC.encode())
    Bot(parse_body(stripped, bot_spec=True))


def test_restore_leaves_valid_single_line_documents_alone():
    assert parse_body(b"{name: x, strategy: sma_cross}", bot_spec=True) == {
        "name": "x",
        "strategy": "sma_cross",
    }
    assert restore_newlines("name: x") == "name: x"


def test_unrepairable_body_is_a_400_naming_both_attempts():
    with pytest.raises(ApiError) as info:
        parse_body(b"name: [", bot_spec=True)
    assert info.value.status == 400
    assert "JSON" in info.value.detail and "YAML" in info.value.detail
