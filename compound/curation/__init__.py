"""Curation: the policies that decide what a population keeps, as pure functions over records.

Segments, trial selection (the paper's worst <- best and PBT), exemplar
utility, cluster-based diversity, dedup, difficulty strata, the store
budget: each decides from arrays and records and is testable without Ray.
The state they act on lives in the subpackages: ``curation.store`` (a
trial's store and its versioned chunk log) and ``curation.retrieval``
(embedders and the retrievers that choose what an episode is shown).
"""

from compound.curation.dedup import structural_key
from compound.curation.diversity import diverse_selection
from compound.curation.errors import CurationError
from compound.curation.policies import final_trajectories
from compound.curation.segments import segment_bounds, segment_ranges
from compound.curation.strata import RoundDecision, Strata, demonstrations, next_round_decision, stratify, task_difficulty
from compound.curation.trial_selection import select_trials
from compound.curation.utility import ExemplarUtility, exemplar_curation, exemplar_utilities

__all__ = [
    "CurationError", "ExemplarUtility", "RoundDecision", "Strata", "demonstrations", "diverse_selection",
    "exemplar_curation", "exemplar_utilities", "final_trajectories", "next_round_decision", "segment_bounds",
    "segment_ranges", "select_trials", "stratify", "structural_key", "task_difficulty",
]
