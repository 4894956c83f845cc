"""Shared test set-up: offline, small, deterministic."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "weights" / "fer_vgg19.safetensors"
EXAMPLES = ROOT / "examples"
ARTIFACTS = ROOT / "test-artifacts"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# Two CPU cores: keep each test process to few threads so parallel work does not thrash.
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def release_weights() -> Path:
    if not WEIGHTS.is_file():
        pytest.fail(f"release weights missing: {WEIGHTS}")
    return WEIGHTS


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    """A release folder as ``python -m train export`` writes it: the shipped weights and card,
    a generated ``metrics.json``, plots and history (``app_helpers.make_release``)."""
    from app_helpers import make_release

    return make_release(tmp_path_factory.mktemp("release"), WEIGHTS)


@pytest.fixture(scope="module")
def bare_release(tmp_path_factory) -> Path:
    """Weights and card only: what weights/ holds before a training run is exported."""
    from app_helpers import make_release

    return make_release(tmp_path_factory.mktemp("bare"), WEIGHTS, metrics=False, plots=False)


# The browser tests' fixtures (Chromium, the served app, a browser and a page), for every browser
# test module; Playwright and the app are imported only when a test asks for them.
from browser_helpers import browser, chromium, monitored_url, page, playwright_instance, url  # noqa: E402, F401
