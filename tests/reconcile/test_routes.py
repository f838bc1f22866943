"""``GET /paper/{id}/reconcile`` and ``GET /paper/{id}/orders/{order_id}/explain``."""

from __future__ import annotations

import requests

from alphaswarm.server import ServerThread
from tests.reconcile.conftest import scripted_spec
from tests.server.conftest import free_port, wait_until


def test_reconcile_and_explain_routes(paper_run, ledger):
    session = paper_run(scripted_spec(risk={"kill_switch_attached": True, "max_order_qty": 400}))
    run = session.paper_run_id
    server = ServerThread("127.0.0.1", free_port(), ledger=ledger, dashboard=False).start()
    try:
        url = server.url
        wait_until(lambda: requests.get(url + "/health", timeout=5).status_code == 200)
        r = requests.get(f"{url}/paper/{run}/reconcile", timeout=30)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["paper_run_id"] == run
        assert body["summary"]["differences"] == 0  # against the run's own config
        assert body["summary"]["risk_denials"] == {"paper": 1, "backtest": 1}
        assert len(body["trades"]) == 4 and body["trades"][0]["kind"] == "matched"
        order_id = session.orders["id"].iloc[0]
        r = requests.get(f"{url}/paper/{run}/orders/{order_id}/explain", timeout=30)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "filled" and "Caused by signal" in r.json()["text"]
        r = requests.get(f"{url}/paper/{run}/orders/{run}-d1/explain", timeout=30)
        assert r.status_code == 200 and r.json()["status"] == "denied"
        r = requests.get(f"{url}/paper/{run}/orders/nope/explain", timeout=30)
        assert r.status_code == 404 and "no order 'nope'" in r.json()["detail"]
        assert requests.get(f"{url}/paper/nope/reconcile", timeout=30).status_code == 404
    finally:
        server.stop()
