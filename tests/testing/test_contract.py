"""Negative control of tfpot.testing.contract.ModelContract: run as a model variant's tests, the
contract fails on a model that breaks it (pytest in a subprocess, through the pytester plugin)."""

import os
import textwrap
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]  # helpers.py

VARIANT = textwrap.dedent('''
    from tfpot.testing.contract import ModelContract

    from helpers import make_model


    class TestSO3OnlyVariant(ModelContract):
        def build_model(self, dtype):
            return make_model(parity="none", dtype=dtype)
''')


@pytest.fixture
def variant(pytester, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    pytester.makepyfile(test_variant=VARIANT)
    return pytester


def test_contract_fails_on_a_model_without_reflection_invariance(variant):
    # an SO(3)-only model fails the O(3) tests wherever frames are open: ethanol, the molecular
    # crystal and the slab (in-plane mirrors), in both dtypes. In the near-perfect Cu cell every
    # gate is closed, the model is frame-free there and passes: both outcomes are checked.
    result = variant.runpytest_subprocess("-q", "-p", "no:cacheprovider", "-k",
                                          "o3_translation or slab")
    result.assert_outcomes(failed=6, passed=2)
    result.stdout.fnmatch_lines(["*under a rotoreflection*"])


def test_contract_passes_its_cheap_tests_on_the_same_model_where_it_should(variant):
    # positive control for the harness itself: tests that do not involve reflections pass
    result = variant.runpytest_subprocess("-q", "-p", "no:cacheprovider", "-k",
                                          "save_load or extensive or batch")
    result.assert_outcomes(passed=3)
