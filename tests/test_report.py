"""The run report's pure pieces: the engine line of summary.md."""

import doctest

from compound import report
from compound.report import engine_line


def test_docstring_examples_run():
    result = doctest.testmod(report)
    assert result.attempted > 0 and result.failed == 0


def test_engine_line_is_left_out_for_engines_that_count_nothing():
    assert engine_line({}, 10.0) == ""
    assert engine_line({"prompt_tokens": 0, "prefilled_tokens": 0}, 10.0) == ""


def test_engine_line_without_timings_says_only_what_was_reused():
    line = engine_line({"prompt_tokens": 400, "cached_prompt_tokens": 100, "prefilled_tokens": 300}, 10.0)
    assert line == "Engine: 100 of 400 prompt tokens (25.0%) came from its prefix cache and 300 were prefilled."
