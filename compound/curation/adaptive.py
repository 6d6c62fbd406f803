"""The round-by-round bookkeeping of adaptive self-improvement (``curation.mode: adaptive``).

``strata.py`` holds the paper's rules (difficulty, strata, the next-round
decision); this module turns what a round produced into their inputs and
keeps the few choices the paper leaves open in one place:

- A task's samples are every episode it was given so far, over all rounds,
  and its passes are its *distinct* verified solutions: the curator's
  streaming dedup collapses a structurally equal (code) or action-identical
  solution onto the first, so copies of one solution do not make a task
  look easy. A task solved only in round 3 after 12 failed samples is
  therefore hard-won, as it should be.
- Strata are recomputed after every round from all samples so far; the
  demonstration level counts non-empty strata from the hardest-won one.
- Round 0 runs without demonstrations (none exist); if it solved anything,
  the next round starts from the hardest-won stratum (level 1), as the
  paper's demonstrations do. Afterwards ``next_round_decision`` decides.
- A round budget (``curation.adaptive.max_rounds``) stops the loop even if
  the rule would go on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from compound.curation.errors import CurationError
from compound.curation.strata import RoundDecision, Strata, next_round_decision, stratify, task_difficulty


def sample_outcomes(samples: Mapping[str, int], distinct_passes: Mapping[str, int]) -> dict[str, list[bool]]:
    """Per task, one verdict per sample: ``True`` for each distinct passing solution, ``False`` for the rest.

    >>> sample_outcomes({"a": 4, "b": 4}, {"a": 1})
    {'a': [True, False, False, False], 'b': [False, False, False, False]}
    """
    out = {}
    for task, n in samples.items():
        passes = int(distinct_passes.get(task, 0))
        if not 0 <= passes <= n:
            raise CurationError(f"task {task!r}: {passes} distinct solutions from {n} samples; a sample yields at most one")
        out[task] = [True] * passes + [False] * (n - passes)
    return out


def sample_temperatures(n: int, temperatures: Sequence[float]) -> list[float]:
    """The temperature of each of a task's ``n`` samples: ``temperatures`` cycled (the paper mixed several).

    >>> sample_temperatures(5, [0.2, 1.0])
    [0.2, 1.0, 0.2, 1.0, 0.2]
    """
    if not temperatures:
        raise CurationError("curation.adaptive.temperatures must list at least one temperature")
    return [float(temperatures[i % len(temperatures)]) for i in range(n)]


@dataclass(frozen=True)
class RoundOutcome:
    """What one round leaves: the strata as they now stand and what the next round does."""

    round: int
    level: int  # strata whose solutions this round was shown
    sampled: tuple[str, ...]
    newly_solved: tuple[str, ...]
    solved: tuple[str, ...]
    strata: Strata
    difficulty: Mapping[str, float]
    decision: RoundDecision

    def to_record(self) -> dict[str, Any]:
        """The round's line in ``lineage.jsonl`` (event ``self_improvement_round``)."""
        record = self.decision.to_record()
        next_level = record.pop("level")
        return {
            **record,
            "round": self.round,
            "level": self.level,
            "next_level": next_level,
            "sampled": list(self.sampled),
            "newly_solved": list(self.newly_solved),
            "solved": list(self.solved),
            "strata": [list(level) for level in self.strata.levels],
            "bounds": [list(b) for b in self.strata.bounds],
            "difficulty": {t: round(d, 6) for t, d in sorted(self.difficulty.items())},
        }


def after_round(
    *,
    round_index: int,
    tasks: Sequence[str],
    sampled: Sequence[str],
    samples: Mapping[str, int],
    distinct_passes: Mapping[str, int],
    solved_before: Sequence[str],
    level: int,
    n_strata: int,
    max_rounds: int,
) -> RoundOutcome:
    """The strata and the next round's plan after round ``round_index`` (0-based) ran at ``level``.

    ``samples`` / ``distinct_passes``: cumulative per task over all rounds so
    far (every task of ``tasks`` was sampled in round 0). Pure: a resumed run
    recomputes the same decisions from the same saved results.
    """
    difficulty = task_difficulty(sample_outcomes({t: samples.get(t, 0) for t in tasks}, distinct_passes))
    strata = stratify(difficulty, n_strata=n_strata)
    solved = tuple(t for t in tasks if difficulty[t] < 1.0)
    before = set(solved_before)
    newly = tuple(t for t in solved if t not in before)
    n_levels = len(strata)
    used = min(level, n_levels)
    if round_index == 0 and n_levels:
        decision = next_round_decision(tasks=tasks, solved=solved, newly_solved=newly, level=1, n_levels=n_levels)
        if not decision.stop:
            decision = RoundDecision(decision.retry, 1, False, "first round: demonstrations start from the hardest-won stratum")
    else:
        decision = next_round_decision(tasks=tasks, solved=solved, newly_solved=newly, level=used, n_levels=n_levels)
    if not decision.stop and round_index + 1 >= max_rounds:
        decision = RoundDecision(decision.retry, decision.level, True, f"round budget of {max_rounds} spent")
    return RoundOutcome(round_index, level, tuple(sampled), newly, solved, strata, difficulty, decision)
