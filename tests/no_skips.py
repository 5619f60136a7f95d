"""``DISTILL_NO_SKIPS=1`` (set by ``.ci/run``): a test skipped for a missing optional package fails instead.

Tests that need an optional package (a logger, the SmolLM2 wheel, gguf, timm, deepspeed, ...) skip with an install
hint when it is absent, so that a partial install still runs the rest. CI installs everything, so there a skip can
only mean a missing install step, and it must not pass unseen. Tests skipped by a ``skipif`` mark whose condition is
the point of the test (one that needs a package to be *absent*) are left alone.
"""

from __future__ import annotations

import os

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("DISTILL_NO_SKIPS") == "1" and report.skipped and not hasattr(report, "wasxfail"):
        if any(mark.name == "skipif" for mark in item.iter_markers()):
            return
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under DISTILL_NO_SKIPS=1, where every optional package is installed: {reason}"
