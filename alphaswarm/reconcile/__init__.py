"""The public name of :mod:`alphaswarm.research.reconcile` (``aw.reconcile(...)``).

This module replaces itself with the research module in :data:`sys.modules`, so
``alphaswarm.reconcile`` *is* that module (callable as its function, patchable, one copy).
"""

from __future__ import annotations

import sys

from alphaswarm.research import reconcile as _implementation

sys.modules[__name__] = _implementation
