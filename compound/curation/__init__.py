"""Experience store, embedders, flex retrieval and the curation policies.

The store and retriever hold state; every policy that *decides* (segments,
trial selection, utility, diversity, dedup, strata) is a pure function over
records, testable without Ray. Heavy libraries (torch, transformers,
scikit-learn) load only when an embedder or a clustering first needs them.
"""

from compound.curation.base import Example, NoExamples, Retriever
from compound.curation.dedup import dedup, structural_key
from compound.curation.diversity import diverse_selection, select_diverse
from compound.curation.embedders import Embedder, MiniLMEmbedder, TfidfEmbedder, make_embedder
from compound.curation.errors import CurationError
from compound.curation.policies import final_trajectories
from compound.curation.retrieval import FlexRetriever, make_retriever
from compound.curation.segments import segment_bounds, segment_of, segment_ranges
from compound.curation.store import ExperienceStore
from compound.curation.strata import RoundDecision, Strata, demonstrations, next_round_decision, stratify, task_difficulty
from compound.curation.trial_selection import segment_success_rates, select_trials
from compound.curation.utility import ExemplarUtility, exemplar_curation, exemplar_utilities
from compound.curation.vectors import key_text

__all__ = [
    "CurationError",
    "Embedder",
    "Example",
    "ExemplarUtility",
    "ExperienceStore",
    "FlexRetriever",
    "MiniLMEmbedder",
    "NoExamples",
    "Retriever",
    "RoundDecision",
    "Strata",
    "TfidfEmbedder",
    "dedup",
    "demonstrations",
    "diverse_selection",
    "exemplar_curation",
    "exemplar_utilities",
    "final_trajectories",
    "key_text",
    "make_embedder",
    "make_retriever",
    "next_round_decision",
    "segment_bounds",
    "segment_of",
    "segment_ranges",
    "segment_success_rates",
    "select_diverse",
    "select_trials",
    "stratify",
    "structural_key",
    "task_difficulty",
]
