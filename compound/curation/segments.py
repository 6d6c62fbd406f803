"""The training stream, cut into segments that grow geometrically.

DB-curation scores trials once per segment. Early segments are short, so a
bad trial is caught after few tasks; later ones are longer, so selection acts
on steadier success rates. The paper uses a first segment of 20 tasks, each
next one twice as long.
"""

from __future__ import annotations

from compound.curation.errors import CurationError


def segment_ranges(n_tasks: int, *, first: int = 20, growth: float = 2.0) -> list[range]:
    """Consecutive index ranges covering ``range(n_tasks)``; the last is cut short at the end.

    Segment ``i`` has ``round(first * growth**i)`` tasks (at least one).

    >>> [(r.start, r.stop) for r in segment_ranges(100)]
    [(0, 20), (20, 60), (60, 100)]
    >>> [len(r) for r in segment_ranges(10, first=2, growth=1.5)]
    [2, 3, 4, 1]
    """
    if n_tasks < 0 or first < 1 or growth < 1.0:
        raise CurationError(
            f"segments need n_tasks >= 0, first >= 1 and growth >= 1.0; got n_tasks={n_tasks}, first={first}, growth={growth}"
        )
    out: list[range] = []
    start, index = 0, 0
    while start < n_tasks:
        size = max(1, round(first * growth**index))
        out.append(range(start, min(n_tasks, start + size)))
        start += size
        index += 1
    return out


def segment_bounds(n_tasks: int, first: int = 20, growth: float = 2.0) -> list[tuple[int, int]]:
    """``segment_ranges`` as ``(start, stop)`` pairs (JSON-friendly, for lineage records).

    >>> segment_bounds(50)
    [(0, 20), (20, 50)]
    """
    return [(r.start, r.stop) for r in segment_ranges(n_tasks, first=first, growth=growth)]
