"""KV-state helpers: their docstring examples (the byte cost of a cached token)."""

import doctest

from compound.llm.hf import kv


def test_docstring_examples_run():
    result = doctest.testmod(kv)
    assert result.attempted > 0 and result.failed == 0
