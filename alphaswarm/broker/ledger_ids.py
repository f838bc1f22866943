"""Broker order ids in the ledger's order rows (``paper_orders.broker_order_id``).

A paper session writes its orders as dicts (``Order.to_dict()``); when its engine
trades through a real broker (:class:`~alphaswarm.broker.bridge.EngineBroker`),
:func:`with_broker_order_ids` adds the broker's id of each order so the ledger keeps
it beside ours. The simulated broker has no ids of its own: its rows are left as
they are (the column stays NULL).
"""

from __future__ import annotations

from typing import Any

__all__ = ["with_broker_order_ids"]


def with_broker_order_ids(broker: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Set ``broker_order_id`` on each order row the broker knows an id for.

    Parameters
    ----------
    broker : object
        The engine's broker; only one with a ``broker_order_id(order_id)`` method
        (a real broker behind :class:`~alphaswarm.broker.bridge.EngineBroker`) adds ids.
    rows : list of dict
        Order rows with an ``order_id`` (or ``id``) key, changed in place.

    Returns
    -------
    list of dict
        ``rows``.
    """
    lookup = getattr(broker, "broker_order_id", None)
    if lookup is None:
        return rows
    for row in rows:
        bid = lookup(str(row.get("order_id") or row.get("id") or ""))
        if bid:
            row["broker_order_id"] = bid
    return rows
