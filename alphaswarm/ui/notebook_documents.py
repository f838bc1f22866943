"""Changing the documents of notebook outputs so that the page gets every change, in order.

A Panel notebook output is a Bokeh document on the kernel side and a copy of it on
the page; each change goes over the output's comm as a patch message. Three
things in how Panel and the kernel do that lose changes when views update often:

- **Messages written before the comm opens can be sent out of order.** Panel
  builds the message at once and retries sending each one on its own timer until
  the page has opened the comm; once it has, a later message can go before an
  earlier one (an older status line then overwrites the newest one for good).
- **The kernel may apply the page's messages on another thread.** Applying one
  marks every model of the document as known to the page and discards any change
  not sent yet; halfway through an update, the page then receives references to
  models it never got (``reference ... isn't known``) and loses the update.
- **Each change is sent as soon as it is made**, several messages per view update,
  each built against a model graph that a frozen document has not recomputed yet.

So the kit changes its outputs' documents in batches (:func:`batch`): under
:data:`DOCUMENT_LOCK` (which the page's messages to a kit output also take, see
:class:`KitOutput`), with Panel's sending paused and the model graphs frozen, then
one message per document once the graphs are recomputed. While the page has not
opened an output's comm yet, a batch only takes the lock: Panel sends and retries
each change itself (the first fault above is then still possible; keeping the
changes back until the comm opened lost them for good in a JupyterLab run where
the views stopped changing first).
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Any

import panel as pn

if TYPE_CHECKING:
    from collections.abc import Iterator

#: Held while a kit notebook output's document changes: by a batch and by the page's
#: messages to the output.
DOCUMENT_LOCK = threading.RLock()


def output_documents(components: list[Any]) -> list[tuple[Any, Any]]:
    """The documents of the notebook outputs showing ``components``, with their comms.

    Documents of a server session are left out (the server sends their changes).

    Parameters
    ----------
    components : list
        Views; each one's displayed layout lists the models it rendered.
    """
    docs: dict[int, Any] = {}
    for component in components:
        try:
            layout = component.__panel__()
        except Exception:  # noqa: BLE001 - a view not built yet has no models
            continue
        for model, _parent in list(getattr(layout, "_models", {}).values()):
            doc = getattr(model, "document", None)
            if doc is not None and doc.session_context is None:
                docs[id(doc)] = doc
    if not docs:
        return []
    comms = {id(view[2]): view[3] for view in list(pn.state._views.values()) if len(view) > 3}
    return [(doc, comms.get(key)) for key, doc in docs.items()]


def comm_open(comm: Any) -> bool:
    """True once the page has opened ``comm`` (messages sent now arrive in order)."""
    return comm is not None and bool(getattr(comm, "_comm", None))


def send_pending(doc: Any, comm: Any) -> bool:
    """Send ``doc``'s changes not sent yet as one message, if its comm is open.

    Returns True when nothing is left waiting.
    """
    if not doc.callbacks._held_events:
        return True
    if not comm_open(comm):
        return False
    from panel.io.notebook import push

    push(doc, comm)
    return True


def _send_others(skip: set[int]) -> None:
    """Send what other notebook documents changed while Panel's sending was paused."""
    seen: set[int] = set(skip)
    for view in list(pn.state._views.values()):
        if len(view) < 4:
            continue
        doc, comm = view[2], view[3]
        if doc is None or id(doc) in seen or doc.session_context is not None:
            continue
        seen.add(id(doc))
        if doc.callbacks._held_events and comm_open(comm):
            send_pending(doc, comm)


@contextlib.contextmanager
def batch(components: list[Any], *, freeze: bool = True) -> Iterator[None]:
    """Change the notebook outputs showing ``components``; send each one message after.

    Parameters
    ----------
    components : list
        The views about to change.
    freeze : bool
        Freeze the documents' model graphs meanwhile (one recompute each at the end).
    """
    outputs = output_documents(components)
    with DOCUMENT_LOCK:
        if not outputs or not all(comm_open(comm) for _doc, comm in outputs):
            # an output the page has not opened yet: Panel sends (and retries) each
            # change itself, as it does for any output; a change kept back here could
            # wait for good if the views stop changing before the page opens the comm
            yield
            return
        paused = pn.state._hold
        pn.state._hold = True  # Panel's per-change sends wait for the end of the batch
        try:
            with contextlib.ExitStack() as frozen:
                if freeze:
                    for doc, _comm in outputs:
                        frozen.enter_context(doc.models.freeze())
                yield
        finally:
            pn.state._hold = paused
        if paused:
            return
        for doc, comm in outputs:
            send_pending(doc, comm)
        _send_others({id(doc) for doc, _comm in outputs})


class KitOutput(pn.Column):
    """The root of a kit notebook output.

    The page's messages to it are applied under :data:`DOCUMENT_LOCK`, never in the
    middle of a batch, and only after any change of its document not sent yet has
    been sent (applying a message marks every model as known to the page and drops
    unsent changes).
    """

    def _on_msg(self, ref: str, manager: Any, msg: Any) -> None:
        with DOCUMENT_LOCK:
            view = pn.state._views.get(ref)
            if view is not None and len(view) > 3:
                send_pending(view[2], view[3])
            super()._on_msg(ref, manager, msg)
