"""The layer rules of pyproject.toml ([tool.importlinter]) hold: the domain is pure and
services reach I/O only through ports."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def test_import_contracts_are_kept() -> None:
    command = shutil.which("lint-imports")
    if command is None:
        pytest.fail("lint-imports is missing: install the test extra (pip install -e '.[test]')")
    result = subprocess.run([command], cwd=Path(__file__).parents[2], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
