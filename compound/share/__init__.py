"""Sharing experience between runs, models and people, safely: verify, import, seed, export.

A store from elsewhere is untrusted input. ``verify`` re-runs each of its
trajectories in the environment (replaying its actions, or re-running its
program through the sandboxed verifier); ``importing`` admits only what
re-verifies and is new, quarantines the rest with the reason, and records
each row's provenance (``provenance``); ``seeding`` starts a run's trials
from imported stores (``curation.seed_stores``); ``export`` writes verified
trajectories as chat-format JSONL for fine-tuning. The ``compound store``
command (``compound.cli.store``) is the front door.
"""

from compound.share.export import chat_messages, write_sft
from compound.share.importing import ImportReport, import_store
from compound.share.provenance import SharedRow, env_version, read_imported, write_imported
from compound.share.seeding import SEED, seed_files, seed_trajectories
from compound.share.sources import Destination, Source, environment, open_destination, open_source
from compound.share.verify import Verdict, method_of, verify_all, verify_trajectory

__all__ = [
    "Destination", "ImportReport", "SEED", "SharedRow", "Source", "Verdict", "chat_messages", "env_version", "environment",
    "import_store", "method_of", "open_destination", "open_source", "read_imported", "seed_files", "seed_trajectories",
    "verify_all", "verify_trajectory", "write_imported", "write_sft",
]
