"""Under ``DISTILL_NO_SKIPS=1`` (CI) a test skipped for a missing package fails; without it, it is skipped."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

SUITE = """
import pytest

def test_needs_a_package_that_is_not_there():
    pytest.importorskip("no_such_package_for_distill", reason="pip install no-such-package")

@pytest.mark.skipif(True, reason="the package is installed: the test is about its absence")
def test_about_an_absent_package():
    pass

@pytest.mark.xfail(reason="expected")
def test_expected_to_fail():
    assert False

def test_passes():
    pass
"""


@pytest.fixture
def suite(pytester):
    pytester.makeconftest((Path(__file__).parent / "no_skips.py").read_text())
    pytester.makepyfile(test_suite=SUITE)
    return pytester


def test_without_the_setting_a_missing_package_is_a_skip(suite, monkeypatch):
    monkeypatch.delenv("DISTILL_NO_SKIPS", raising=False)
    suite.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1, skipped=2, xfailed=1)


def test_under_ci_a_missing_package_fails_with_its_install_hint(suite, monkeypatch):
    monkeypatch.setenv("DISTILL_NO_SKIPS", "1")
    result = suite.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1, skipped=1, xfailed=1)
    result.stdout.fnmatch_lines(["*skipped under DISTILL_NO_SKIPS=1*pip install no-such-package*"])
