"""One trial's experience: the store, its versioned chunk log, the vectors it carries, insert-time dedup.

``ExperienceStore`` holds a trial's successes and their vectors;
``StoreLog`` is the append-only log of immutable chunks a worker reads
deltas of (a version is a count of chunks; ``staleness`` says how far a log
moved while an episode ran); ``InsertDedup`` collapses repeats as they
arrive; ``canonical_order`` is the order a final store is saved in.
"""

from compound.curation.store.chunk_log import Chunk, Delta, StoreLog, staleness
from compound.curation.store.experience_store import ExperienceStore, canonical_order, strategy_vectors_for
from compound.curation.store.insert_dedup import InsertDedup
from compound.curation.store.vectors import (
    StackedVectors,
    TrajectoryVectors,
    check_vectors,
    embed_trajectories,
    example_set_embeddings,
    key_text,
    stack_vectors,
    strategy_vectors,
)

__all__ = [
    "Chunk", "Delta", "ExperienceStore", "InsertDedup", "StackedVectors", "StoreLog", "TrajectoryVectors",
    "canonical_order", "check_vectors", "embed_trajectories", "example_set_embeddings", "key_text", "stack_vectors",
    "staleness", "strategy_vectors", "strategy_vectors_for",
]
