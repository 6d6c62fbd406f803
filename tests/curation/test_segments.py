"""Segments: geometric growth, full coverage, no overlap."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from compound.curation.errors import CurationError
from compound.curation.segments import segment_ranges


def test_paper_defaults_double_from_twenty() -> None:
    assert [(r.start, r.stop) for r in segment_ranges(300)] == [(0, 20), (20, 60), (60, 140), (140, 300)]
    assert [len(r) for r in segment_ranges(20)] == [20]
    assert segment_ranges(0) == []


@given(st.integers(0, 2000), st.integers(1, 50), st.floats(1.0, 4.0))
def test_segments_tile_the_stream_and_grow(n, first, growth) -> None:
    ranges = segment_ranges(n, first=first, growth=growth)
    assert [i for r in ranges for i in r] == list(range(n))
    sizes = [len(r) for r in ranges[:-1]]  # the last one may be cut short
    assert sizes == sorted(sizes) and all(size >= 1 for size in sizes)
    if ranges:
        assert len(ranges[0]) == min(first, n)


@pytest.mark.parametrize("kwargs", [dict(n_tasks=-1), dict(n_tasks=5, first=0), dict(n_tasks=5, growth=0.5)])
def test_bad_parameters_are_named(kwargs) -> None:
    with pytest.raises(CurationError, match="segments need"):
        segment_ranges(**kwargs)
