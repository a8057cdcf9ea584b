"""Coverage-guided fuzzing of the XML and mapping entry points, for a fixed number of executions:
no input may crash them (``SCHAKEL_FUZZ_RUNS`` raises the count for ``make proof``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris", reason="atheris is not installed (it is in the test extra)")
pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
RUNS = os.environ.get("SCHAKEL_FUZZ_RUNS", "2000")


def fuzz(target: str, runs: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tests.security.fuzz", target, f"-runs={runs}", "-seed=20261122",
                           "-artifact_prefix=" + str(Path(os.environ.get("TMPDIR", "/tmp")) / f"crash-{target}-")],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)


@pytest.mark.parametrize("target", ["xml", "iwmo", "plan", "mapping"])
def test_no_input_crashes_the_entry_point(target):
    run = fuzz(target, RUNS)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"Done {RUNS} runs" in run.stderr


def test_a_crash_does_fail_the_fuzz_run():
    run = fuzz("selfcheck", "10")
    assert run.returncode != 0 and "selfcheck" in run.stderr
