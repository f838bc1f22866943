"""Bad input over HTTP: schemathesis fuzzing from ``/openapi.json``; rejections write nothing.

The server is a real process on a loopback port with its own SQLite ledger and a
bearer token. For every documented operation schemathesis generates valid
(positive) and invalid (negative) requests carrying the token; each response must
not be a 5xx, must use a documented status code and content type, must match its
documented schema, and every error must be JSON ``{error, detail}``. The ledger is
snapshotted around every request: a 4xx must leave every table as it was.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from typing import TYPE_CHECKING

import pytest
import requests
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable

from alphaswarm.ledger import Ledger

from .conftest import FAST_BOT

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed")

from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

if TYPE_CHECKING:
    from pathlib import Path

#: Examples per operation and generation mode (bounded: the suite runs in minutes).
MAX_EXAMPLES = 12
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
TABLES = (
    "bots", "bot_versions", "backtest_runs", "paper_trading_runs", "paper_orders",
    "paper_fills", "paper_equity", "paper_frames", "paper_frame_blocks", "risk_events",
    "audit_log",
)  # fmt: skip


def _error_shape(response) -> str | None:
    if response.status_code < 400:
        return None
    try:
        body = response.json()
    except ValueError:
        return f"{response.status_code}: not JSON: {response.text[:200]!r}"
    if not (isinstance(body, dict) and isinstance(body.get("error"), str)
            and isinstance(body.get("detail"), str)):  # fmt: skip
        return f"{response.status_code}: not {{error, detail}}: {body!r}"[:300]
    return None


TOKEN = "fuzz-token-31f0c2"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _snapshot(db_path: Path) -> dict[str, str]:
    """A digest of every table of a SQLite ledger (read-only)."""
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        out = {}
        for name in names:
            rows = con.execute(f'SELECT * FROM "{name}"').fetchall()  # noqa: S608 - schema names
            out[name] = hashlib.sha256(repr(sorted(map(repr, rows))).encode()).hexdigest()
        return out
    finally:
        con.close()


def _settle(url: str) -> None:
    """After an accepted request: no session running, the kill switch released."""
    requests.post(url + "/paper/stop-all", json={}, headers=AUTH, timeout=60)
    deadline = time.monotonic() + 60
    while requests.get(url + "/paper?status=running", headers=AUTH, timeout=30).json()["runs"]:
        assert time.monotonic() < deadline, "sessions did not stop"
        time.sleep(0.1)
    requests.post(url + "/kill-switch/reset", json={}, headers=AUTH, timeout=30)


def _fuzz_operation(op, mode, url: str, db_path: Path | None = None) -> dict:
    found: dict = {"tried": 0, "failures": []}

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=op.as_strategy(generation_mode=mode))
    def run(case):
        found["tried"] += 1
        before = _snapshot(db_path) if db_path is not None else None
        response = case.call(base_url=url, timeout=30, headers=AUTH)
        if before is not None and 400 <= response.status_code < 500:
            after = _snapshot(db_path)
            changed = sorted(t for t in after if after[t] != before.get(t))
            if changed:
                found["failures"].append(
                    f"{response.status_code} changed table(s) {changed}: "
                    f"{case.method} {case.formatted_path} {str(case.body)[:200]}"
                )
        elif before is not None and response.status_code < 400:
            _settle(url)
        try:
            case.validate_response(response, checks=CHECKS)
        except Exception as exc:  # noqa: BLE001 - collected, reported together
            found["failures"].append(str(exc)[:600])
            return
        problem = _error_shape(response)
        if problem:
            found["failures"].append(problem)

    try:
        run()
    except Unsatisfiable:
        if mode is GenerationMode.POSITIVE:
            raise
        # nothing in this operation can be made invalid (no parameters, no body)
    return found


@pytest.fixture(scope="module")
def token_fresh_server(forker, tmp_path_factory):
    """A forked server with a token on a fresh SQLite ledger: ``(url, db_path, log)``."""
    from tests.ports import free_port

    root = tmp_path_factory.mktemp("fuzz")
    db_path = root / "ledger.db"
    log = root / "server.log"
    port = free_port()
    pid = forker.start(port, f"sqlite:///{db_path}", log, TOKEN)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if requests.get(url + "/health", headers=AUTH, timeout=2).ok:
                break
        except requests.ConnectionError:
            pass
        assert time.monotonic() < deadline, log.read_text()[-2000:]
        time.sleep(0.1)
    yield url, db_path, log
    forker.kill(pid)


def test_fuzz_every_operation_from_openapi(token_fresh_server):
    url, db_path, log = token_fresh_server
    schema = schemathesis.openapi.from_url(url + "/openapi.json", headers=AUTH)
    tried = 0
    failures: list[str] = []
    t0 = time.monotonic()
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) >= 20
    for op in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            label = f"{op.method.upper()} {op.path} [{mode.value}]"
            found = _fuzz_operation(op, mode, url, db_path)
            tried += found["tried"]
            failures.extend(f"{label}: {f}" for f in found["failures"])
    requests.post(url + "/kill-switch/reset", json={}, headers=AUTH, timeout=30)
    print(  # noqa: T201 - the figure the lead pastes
        f"\nschemathesis: {tried} cases over {len(operations)} operations, "
        f"{len(failures)} failures, {time.monotonic() - t0:.0f} s"
    )
    assert not failures, "\n".join(failures[:20]) + "\n" + log.read_text()[-3000:]


# --------------------------------------------------------------------- rejected = unchanged


def _counts(ledger: Ledger) -> dict[str, int]:
    return {t: int(ledger.sql(f"SELECT count(*) AS n FROM {t}")["n"].iloc[0]) for t in TABLES}  # noqa: S608 - fixed names


DEEP = "[" * 100_000 + "]" * 100_000
BAD_BODIES = [
    b"not json: [",
    b"\xff\xfe\x00garbage",
    b"[1, 2, 3]",
    b'"a string"',
    b"42",
    b"null",
    b'{"starting_cash": NaN}',
    b'{"starting_cash": Infinity}',
    b'{"starting_cash": -5}',
    b'{"starting_cash": 1e400}',
    b'{"starting_cash": "100000"}',
    b'{"speed": -1}',
    b'{"duration_minutes": 0}',
    b'{"bars": 0}',
    b'{"bars": 1.5}',
    b'{"bars": true}',
    b'{"reason": {"nested": 1}}',
    b'{"mode": "explode"}',
    b'{"ttl_seconds": -3}',
    b'{"unknown_key": 1}',
    b'{"\\ud800": 1}',
    b'{"reason": "\\u0000"}',
    b'{"reason": "\\ud800"}',
    b'{"run_name": "\\udfff", "speed": 0}',
    b'{"bot": "\\ud800x"}',
    b"!!python/object/apply:os.system ['echo pwned']",
    b"a: &a [1]\nb: *a\n",
    b'{"bars": ' + b"9" * 5000 + b"}",
    b"start: 2024-13-45\n",
    b"reason: 2024-02-30\n",
    DEEP.encode(),
    b'{"x": "' + b"a" * (1024 * 1024 + 10) + b'"}',
]


@pytest.fixture(scope="module")
def targets(fresh_server):
    url, db_url, _ = fresh_server
    r = requests.post(url + "/bots", json=FAST_BOT, timeout=30)
    assert r.status_code in (200, 201), r.text
    bot_id = r.json()["bot_id"]
    body = {"speed": 0, "max_bars": 50, "force": True, "reason": "fuzz"}
    r = requests.post(url + f"/bots/{bot_id}/paper", json=body, timeout=30)
    assert r.status_code == 201, r.text
    run_id = r.json()["paper_run_id"]
    deadline = time.monotonic() + 30
    while requests.get(url + f"/paper/{run_id}", timeout=10).json()["status"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    return bot_id, run_id


def test_rejected_requests_change_nothing(fresh_server, targets):
    url, db_url, log = fresh_server
    bot_id, run_id = targets
    routes = [
        "/bots",
        f"/bots/{bot_id}/backtest",
        f"/bots/{bot_id}/paper",
        f"/bots/{bot_id}/halt",
        "/bots/halt-all",
        "/paper/stop-all",
        f"/paper/{run_id}/stop",
        "/kill-switch",
        "/kill-switch/reset",
        "/agents/halt",
    ]
    ledger = Ledger(url=db_url)
    try:
        before = _counts(ledger)
        outcomes: dict[int, int] = {}
        problems: list[str] = []
        for route in routes:
            bodies = [*BAD_BODIES, b""] if route == "/bots" else BAD_BODIES
            for body in bodies:
                r = requests.post(url + route, data=body, timeout=60)
                outcomes[r.status_code] = outcomes.get(r.status_code, 0) + 1
                if not 400 <= r.status_code < 500:
                    problems.append(f"POST {route} {body[:60]!r}: {r.status_code} {r.text[:200]}")
                problem = _error_shape(r)
                if problem:
                    problems.append(f"POST {route} {body[:60]!r}: {problem}")
        after = _counts(ledger)
        state = requests.get(url + "/kill-switch", timeout=10).json()
    finally:
        ledger.close()
    assert not problems, "\n".join(problems)
    changed = {t: (before[t], after[t]) for t in TABLES if before[t] != after[t]}
    print(f"\nrejected requests: {outcomes}; tables changed: {changed}")  # noqa: T201
    assert state["engaged"] is False
    assert not changed, changed


ODD_TEXT = [
    "\\ud800",  # a lone surrogate (JSON escape): not encodable as UTF-8
    "\\udfff\\ud800",
    "\\u0000",
    "\\u202egnp.exe",  # right-to-left override
    "\\u200b",  # zero-width space only
    "\\ufeffbom",
    "e\\u0301",  # NFD é
    "\\u00e9",  # NFC é (same slug as the line above)
    "\\ud83d\\ude80 rocket",
    "x" * 101,
    "\\u0130\\u0131\\u017f",  # dotted/dotless i, long s: case-folding oddities
    "   ",
    "a\\nb\\tc",
]


def test_unicode_oddities_in_bot_names_and_symbols(fresh_server):
    url, db_url, log = fresh_server
    problems: list[str] = []
    outcomes: dict[int, int] = {}
    for i, text in enumerate(ODD_TEXT):
        for field in ("name", "symbol"):
            name = text if field == "name" else f"odd-{i}"
            symbol = text if field == "symbol" else "DEMO"
            # written by hand: json.dumps would escape the oddities differently
            body = f'{{"name": "{name}", "strategy": "sma_cross", "universe": ["{symbol}"]}}'
            body = body.encode()
            r = requests.post(url + "/bots", data=body, timeout=30)
            outcomes[r.status_code] = outcomes.get(r.status_code, 0) + 1
            if r.status_code >= 500 or r.status_code not in (200, 201, 400, 422):
                problems.append(f"{field}={text!r}: {r.status_code} {r.text[:200]}")
            elif _error_shape(r):
                problems.append(f"{field}={text!r}: {_error_shape(r)}")
            elif r.status_code in (200, 201):
                bot_id = r.json()["bot_id"]
                got = requests.get(url + f"/bots/{bot_id}", timeout=10)
                if got.status_code != 200:
                    problems.append(f"{field}={text!r}: created {bot_id!r}, GET {got.status_code}")
    print(f"\nunicode oddities: {outcomes}")  # noqa: T201
    assert not problems, "\n".join(problems) + "\n" + log.read_text()[-2000:]
