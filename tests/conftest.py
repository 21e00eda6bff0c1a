"""Shared fixtures: where ../shared is, and running a test on both twins."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
PCAPS_DEV = SHARED / "pcaps" / "dev"
CLASSBENCH = SHARED / "classbench"
EXAMPLES = ROOT / "examples"
SAMPLE_PCAPS = ROOT / "pcaps"


def require(path: Path) -> Path:
    """Skip the calling test when a ../shared data set is absent (a user's clone)."""
    if not path.exists():
        pytest.skip(f"{path} is absent")
    return path


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With CLASSIFIER_NO_EXTENSIONS=1 set for the whole run (the test command's second pass,
    which puts every other test on the pure twins), the tests that take `twin_mode` already ran
    on both twins in the first pass: deselect them rather than run them twice again."""
    if os.environ.get("CLASSIFIER_NO_EXTENSIONS") != "1":
        return
    keep = [item for item in items if "twin_mode" not in getattr(item, "fixturenames", ())]
    if len(keep) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in keep])
        items[:] = keep


@pytest.fixture(params=["compiled", "python"])
def twin_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test once with the compiled modules and once with their pure-Python twins.

    Every kernel call reads the switch (classifier._twins.Twin), and a connection tracker or
    a capture picks its core when it is built, so setting the switch here reaches everything
    the test builds and runs.
    """
    if request.param == "python":
        monkeypatch.setenv("CLASSIFIER_NO_EXTENSIONS", "1")
    else:
        monkeypatch.delenv("CLASSIFIER_NO_EXTENSIONS", raising=False)
    return str(request.param)
