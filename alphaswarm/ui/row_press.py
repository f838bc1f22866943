"""Row clicks that survive a table redraw.

Panel's Tabulator redraws every row when its data is patched, and a live run's
row in the runs table is patched every few seconds. A click is a press and a
release on the same element: when a redraw replaces the row in between, the
browser fires no click and the table never hears of it, so the user's click on
a live run did nothing about one time in twenty, and every time on a busy page.

:class:`RowPress` listens to the presses and releases themselves, in the
capture phase of the whole page: a release over a row of the same run as the
press (the same element or its redrawn successor) reports that run, whatever
the table did in between. A drag from one run's row to another's selects
nothing, as a click would not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import panel as pn
import param

if TYPE_CHECKING:
    from collections.abc import Callable


class RowPress(pn.custom.JSComponent):
    """Reports the value of ``field`` in the row of a table that was pressed and released.

    Parameters
    ----------
    on_row : callable
        Called with the field's text of the row clicked (on the document's thread).
    """

    table_class = param.String(
        default="", doc="CSS class of the tables (Tabulator widgets) whose rows are watched."
    )
    field = param.String(default="id", doc="Column whose text identifies a row.")

    _esm = """
    export function render({ model, el }) {
      el.style.display = "none"
      // the row element and its table under an event, across shadow roots
      const hit = (e) => {
        let row = null
        for (const node of e.composedPath()) {
          if (!node.classList) continue
          if (!row && node.classList.contains("tabulator-row")) row = node
          if (row && node.classList.contains(model.table_class)) {
            const cell = row.querySelector(`[tabulator-field="${model.field}"]`)
            return cell ? cell.textContent.trim() : null
          }
        }
        return null
      }
      let pressed = null
      const down = (e) => { pressed = e.button === 0 ? hit(e) : null }
      const up = (e) => {
        const key = pressed
        pressed = null
        if (key && e.button === 0 && hit(e) === key) model.send_msg({ key })
      }
      document.addEventListener("pointerdown", down, true)
      document.addEventListener("pointerup", up, true)
      model.on("remove", () => {
        document.removeEventListener("pointerdown", down, true)
        document.removeEventListener("pointerup", up, true)
      })
    }
    """

    def __init__(self, on_row: Callable[[str], Any], **params: Any) -> None:
        super().__init__(height=0, width=0, margin=0, **params)
        self._on_row = on_row

    def _handle_msg(self, msg: Any) -> None:
        key = msg.get("key") if isinstance(msg, dict) else None
        if isinstance(key, str) and key:
            self._on_row(key)
