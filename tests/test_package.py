"""The committed wheel installs into a fresh virtual environment and loads
with spacy.load("vi_decision_ie") from a directory outside the checkout."""
from __future__ import annotations

import subprocess
import sys

import pytest


def test_committed_wheel_installs_and_loads_in_fresh_venv(repo_root):
    wheels = sorted((repo_root / "packages").glob("vi_decision_ie-*-py3-none-any.whl"))
    assert wheels, "no released wheel under packages/"
    result = subprocess.run(
        [sys.executable, str(repo_root / "scripts" / "check_package.py"), str(wheels[-1]), "--name", "vi_decision_ie"],
        capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Loaded vi_decision_ie in a fresh venv" in result.stdout
    assert "OFFICE" in result.stdout
