"""Shared fixtures: the bundled model, the tiny hand-built prior set, seeded RNGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import alpnet

ROOT = Path(__file__).resolve().parent.parent
MINI = Path(__file__).resolve().parent / "data" / "mini_priors"
EXAMPLES = ROOT / "examples" / "cases"
BAD_CASES = ROOT / "examples" / "bad_cases"


@pytest.fixture(scope="session")
def model() -> alpnet.Model:
    return alpnet.load_model()


@pytest.fixture(scope="session")
def mini() -> alpnet.Model:
    return alpnet.load_model(MINI)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261125)


@pytest.fixture(autouse=True)
def _run_from_the_repository_root():
    """Every test starts in the repository root, whatever an earlier test or library did to the
    working directory (a CI run once lost its working directory mid-suite); a test that leaves the
    process in a folder that no longer exists is reported by name."""
    import os
    import warnings

    os.chdir(ROOT)
    yield
    try:
        os.getcwd()
    except FileNotFoundError:
        warnings.warn("this test left the process in a deleted working directory", stacklevel=1)
        os.chdir(ROOT)
