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
