"""Start-up: ``import alphaswarm`` and ``alphaswarm --version`` load no heavy package.

What they cost in seconds is measured by ``bench/startup.py``; these tests check the
cause (which packages get imported), which does not depend on the machine's load.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import alphaswarm

ROOT = Path(__file__).resolve().parents[1]

#: Packages a plain import or ``--version`` must not load (UI, migrations, cluster, brokers).
HEAVY = ("panel", "holoviews", "bokeh", "alembic", "dask", "distributed", "ccxt", "alpaca")


def loaded_after(code: str) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    probe = textwrap.dedent(code) + textwrap.dedent(
        f"""
        import json, sys
        heavy = {HEAVY!r}
        print(json.dumps(sorted(
            m for m in sys.modules if m.split(".")[0] in heavy
        )))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = proc.stdout.strip().splitlines()
    return {"modules": json.loads(lines[-1]), "output": lines[:-1]}


def test_import_alphaswarm_loads_no_heavy_package():
    out = loaded_after(f"import alphaswarm\nassert alphaswarm.__file__.startswith({str(ROOT)!r})\n")
    assert out["modules"] == []


def test_version_loads_no_heavy_package():
    out = loaded_after(
        """
        from alphaswarm.cli import main
        try:
            main(["--version"])
        except SystemExit as exc:
            assert exc.code in (0, None), exc.code
        """
    )
    assert out["modules"] == []
    assert out["output"] == [f"alphaswarm {alphaswarm.__version__}"]


@pytest.mark.parametrize(
    "name", ["Bot", "kill_switch", "Ledger", "PaperSession", "backtest", "sweep", "reconcile"]
)
def test_a_public_name_loads_only_what_it_needs(name):
    out = loaded_after(f"import alphaswarm as aw\naw.{name}\n")
    assert not {m.split(".")[0] for m in out["modules"]} & {
        "panel", "holoviews", "bokeh", "dask", "distributed", "ccxt", "alpaca", "alembic"
    }  # fmt: skip
