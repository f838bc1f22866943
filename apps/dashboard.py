"""The paper-trading dashboard: ``panel serve apps/dashboard.py``."""

from alphaswarm.ui.app import dashboard

dashboard().servable()
