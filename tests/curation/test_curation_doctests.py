"""The runnable examples in the curation modules' docstrings stay true."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "budget",
    "dedup",
    "diversity",
    "retrieval.embedders",
    "store.insert_dedup",
    "retrieval.mmr",
    "pbt",
    "segments",
    "store.experience_store",
    "strata",
    "trial_params",
    "trial_selection",
    "utility",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name) -> None:
    module = importlib.import_module(f"compound.curation.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
