"""The checkpoint tests build curator states from real trajectories: the curation tests' fixtures."""

from tests.curation.conftest import tfidf, traj  # noqa: F401  (fixtures, used by name)
