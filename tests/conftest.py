"""Settings for the whole suite.

Hypothesis runs without its per-example deadline: a test checks behaviour,
and on a busy 2-core CI machine an example's wall time says nothing about
the code (speed is measured in benchmarks/, not asserted here).
"""

from __future__ import annotations

from hypothesis import settings

settings.register_profile("compound", deadline=None)
settings.load_profile("compound")
