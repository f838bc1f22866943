"""Tests never write the committed pictures: screenshots go to ``test-artifacts/``.

The pictures in ``docs/img/`` are refreshed by hand with ``scripts/screenshots.py``;
a test writing there would dirty every clone's tree on each run. ``scripts/test.sh``
also checks that ``git status`` is the same before and after the suite.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: A path to docs/img built in code: ``"docs" / "img"`` or ``"docs/img/..."``.
DOCS_IMG = re.compile(r"""["']docs["']\s*/\s*["']img|["']docs/img""")


def test_no_test_builds_a_path_into_docs_img():
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in sorted((ROOT / "tests").rglob("*.py"))
        if path != Path(__file__).resolve()
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if DOCS_IMG.search(line)
    ]
    assert offenders == [], "tests write into docs/img/:\n" + "\n".join(offenders)
