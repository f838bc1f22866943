"""A page's copy of a notebook output: what the kernel sends, applied as a browser does.

The kernel side renders a kit view into a Bokeh document with a comm, as Panel does
for a notebook cell; :class:`PageCopy` records what is sent over that comm and
applies each patch message, in order, to its own copy of the document with Bokeh's
deserializer. Like BokehJS, it refuses a message that refers to a model the page
never received (``unknown_references`` lists them).
"""

from __future__ import annotations

import json
from typing import Any

from bokeh.core.serialization import Buffer, Deserializer, Serialized, UnknownReferenceError
from bokeh.document import Document
from panel.io.model import add_to_doc


class RecordingComm:
    """The kernel's end of an output's comm: keeps what is sent once the page opened it."""

    _count = 0

    def __init__(self, *, open_: bool = True) -> None:
        RecordingComm._count += 1
        self.id = f"page-copy-{RecordingComm._count}"
        self._comm: object | None = object() if open_ else None
        self.parts: list[Any] = []

    def open(self) -> None:
        """The page opened the comm."""
        self._comm = object()

    def send(self, data: Any = None, metadata: Any = None, buffers: Any = ()) -> None:
        assert self._comm is not None, "sent before the page opened the comm"
        self.parts.append(buffers[0] if buffers else data)


class PageCopy:
    """Render ``viewable`` as a notebook output and keep the page's copy of it.

    Parameters
    ----------
    viewable : panel.viewable.Viewable
        The output's root object (a kit output's root, or any Panel object).
    comm_open : bool
        Whether the page has opened the output's comm already.
    """

    def __init__(self, viewable: Any, *, comm_open: bool = True) -> None:
        self.viewable = viewable
        self.doc = Document()
        self.comm = RecordingComm(open_=comm_open)
        self.root = viewable.get_root(self.doc, self.comm)
        add_to_doc(self.root, self.doc, hold=True)
        self.page = Document.from_json(self.doc.to_json())
        self.messages = 0
        self.unknown_references: list[str] = []

    @property
    def ref(self) -> str:
        """The output's root model id."""
        return self.root.ref["id"]

    def receive(self) -> int:
        """Apply what was sent since the last call; the number of messages applied."""
        parts, self.comm.parts = self.comm.parts, []
        applied = i = 0
        while i < len(parts):
            header, content = json.loads(parts[i]), json.loads(parts[i + 2])
            i += 3
            buffers = []
            for _ in range(header.get("num_buffers", 0)):
                buffers.append(Buffer(json.loads(parts[i])["id"], parts[i + 1]))
                i += 2
            message = Serialized(content, buffers)
            try:
                Deserializer(list(self.page.models)).deserialize(message)
            except UnknownReferenceError as missing:
                self.unknown_references.append(str(missing))
                continue
            self.page.apply_json_patch(message)
            applied += 1
        self.messages += applied
        return applied

    def model(self, server_model: Any) -> Any:
        """The page's copy of ``server_model``."""
        return self.page.get_model_by_id(server_model.id)
