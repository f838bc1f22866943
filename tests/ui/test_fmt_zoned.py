"""Timestamps written in a zone: the pages' and the run report's one formatter."""

from __future__ import annotations

import pandas as pd

from alphaswarm.ui.pages.html import fmt_time, fmt_zoned
from alphaswarm.ui.run_report import fmt_in_zone


def test_fmt_zoned_converts_naive_utc_and_names_the_zone():
    assert fmt_zoned("2026-01-02 03:04:05", "Europe/Paris", "%H:%M %Z") == "04:04 CET"
    assert fmt_zoned(pd.Timestamp("2026-01-02 03:04", tz="UTC"), None, "%H:%M %Z") == "03:04 UTC"
    assert fmt_zoned("2026-01-02 03:04", "Not/AZone", "%H:%M %Z") == "03:04 UTC"
    assert fmt_zoned(None, "UTC", "%H") == ""
    assert fmt_zoned(pd.NaT, "UTC", "%H") == ""
    assert fmt_zoned("soon", "UTC", "%H") == "soon"


def test_the_page_and_report_formats_outside_a_browser_are_utc():
    assert fmt_time("2026-01-02 03:04:05") == "2026-01-02 03:04:05 UTC"
    assert fmt_in_zone("2026-01-02 03:04:05", "local") == "2026-01-02 03:04 UTC"
    assert fmt_in_zone("2026-01-02 03:04:05", "utc") == "2026-01-02 03:04 UTC"
    assert fmt_in_zone(None, "local") == ""
