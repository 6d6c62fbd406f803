"""Exemplar utility and Exemplar-Curation (Traj-Bootstrap).

A stored trajectory tau is useful if the episodes that were shown it tended
to succeed. With ``o_i`` = 1 when episode ``i`` succeeded and ``f_i(tau)`` =
the share of episode ``i``'s retrievals that returned tau (its count in
``i.retrievals``, every id every retrieval call returned, with repeats,
over their length), the utility is

    Q(tau) = sum_i o_i * f_i(tau) / sum_i f_i(tau)

over the episodes that retrieved tau. Weighting by ``f_i`` credits tau more
for an episode in which it was most of what the agent saw than for one where
it was one example among many.

Exemplar-Curation keeps, per training task, the highest-Q success across all
trials, and the final database is built from those.

The sums are kept in integers (each share in units of ``2**-40``), so they
do not depend on the order the episodes are observed in: the curator's
online Q, a resumed run's and one computed from the run directory agree to
the last bit, and so do the decisions that rank by Q.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from compound.curation.errors import CurationError
from compound.types import Trajectory


@dataclass(frozen=True)
class ExemplarUtility:
    """Q and the evidence behind it: ``weight`` = sum of f_i, ``episodes`` = how many retrieved it."""

    q: float
    weight: float
    episodes: int


def _unique_by_id(trajectories: Iterable[Trajectory]) -> list[Trajectory]:
    seen: dict[str, Trajectory] = {}
    for t in trajectories:
        seen.setdefault(t.id, t)
    return list(seen.values())


def exemplar_utilities(episodes: Iterable[Trajectory]) -> dict[str, ExemplarUtility]:
    """Q for every trajectory id that some episode retrieved.

    An episode listed twice (the same id) counts once. An episode without a
    retrieval log (written before trajectory/3) falls back to its distinct
    ``example_ids``, each counted once.

    >>> from compound.types import Trajectory
    >>> ep = lambda i, ok, log: Trajectory(i, "e", i, "train", "", "", "", (), ok, True, False, retrievals=log)
    >>> u = exemplar_utilities([ep("1", True, ("a", "b", "a")), ep("2", False, ("a",))])
    >>> round(u["a"].q, 3), u["b"].q   # a: (1 * 2/3) / (2/3 + 1) = 0.4
    (0.4, 1.0)
    """
    online = OnlineUtility()
    for episode in _unique_by_id(episodes):
        online.observe(episode)
    return online.utilities()


SHARE_UNIT = 1 << 40
"""A retrieval share ``hits / len(shown)`` is counted as ``hits * SHARE_UNIT // len(shown)``: exact, order-free sums."""


class OnlineUtility:
    """Q kept up to date as episodes finish (the curator's copy); the same sums as ``exemplar_utilities``.

    An episode re-observed under the same id (a re-run) replaces its earlier
    contribution, so a retried episode is not counted twice. Per episode it
    keeps only what that takes (its success and the ids it was shown), not
    the episode: at a million episodes the curator should not hold them twice.

    >>> from compound.types import Trajectory
    >>> ep = lambda i, ok, log: Trajectory(i, "e", i, "train", "", "", "", (), ok, True, False, retrievals=log)
    >>> online = OnlineUtility()
    >>> online.observe(ep("1", False, ("a",)))
    >>> online.observe(ep("1", True, ("a",)))   # the re-run succeeded: it replaces the failure
    >>> online.utilities()["a"].q
    1.0
    """

    def __init__(self) -> None:
        self._numerator: dict[str, int] = defaultdict(int)
        self._denominator: dict[str, int] = defaultdict(int)
        self._count: dict[str, int] = defaultdict(int)
        self._seen: dict[str, tuple[bool, tuple[str, ...]]] = {}  # per episode id: (success, ids shown)

    def observe(self, episode: Trajectory) -> None:
        self.observe_shown(episode.id, episode.success, episode.retrievals or episode.example_ids)

    def observe_shown(self, episode_id: str, success: bool, shown: tuple[str, ...]) -> None:
        """``observe`` from an episode's id, verdict and the ids it was shown (read from columns, no trajectory needed)."""
        previous = self._seen.pop(episode_id, None)
        if previous is not None:
            self._apply(*previous, -1)
        self._seen[episode_id] = (bool(success), tuple(shown))
        self._apply(*self._seen[episode_id], +1)

    def _apply(self, success: bool, shown: tuple[str, ...], sign: int) -> None:
        for tid, hits in Counter(shown).items():
            share = hits * SHARE_UNIT // len(shown)
            self._numerator[tid] += sign * int(success) * share
            self._denominator[tid] += sign * share
            self._count[tid] += sign

    def settle(self) -> None:
        """No episode observed so far will be observed again (a segment ended): forget what each contributed, keep the sums."""
        self._seen = {}

    def state(self) -> dict[str, Any]:
        """The running sums (integers) and what each episode contributed, as JSON."""
        return {"numerator": dict(self._numerator), "denominator": dict(self._denominator), "count": dict(self._count),
                "seen": {eid: [ok, list(shown)] for eid, (ok, shown) in self._seen.items()}}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> "OnlineUtility":
        """The utility ``state`` described (the same sums, so the same Q to the last bit)."""
        out = cls()
        out._numerator.update({k: int(v) for k, v in state["numerator"].items()})
        out._denominator.update({k: int(v) for k, v in state["denominator"].items()})
        out._count.update(state["count"])
        out._seen = {eid: (bool(ok), tuple(shown)) for eid, (ok, shown) in state["seen"].items()}
        return out

    def utilities(self) -> dict[str, ExemplarUtility]:
        """Q for every id some observed episode retrieved (ids whose evidence was withdrawn are left out)."""
        return {
            tid: ExemplarUtility(self._numerator[tid] / self._denominator[tid], self._denominator[tid] / SHARE_UNIT, self._count[tid])
            for tid in sorted(self._denominator)
            if self._count[tid] > 0
        }


def population_prior(utilities: Mapping[str, ExemplarUtility], fallback: float = 0.5) -> float:
    """The f-weighted mean Q over all retrieved exemplars (``fallback`` when none was retrieved).

    This is the default utility of a never-retrieved success: with no
    evidence, it is assumed as useful as the average exemplar.
    """
    total = sum(u.weight for u in utilities.values())
    return sum(u.q * u.weight for u in utilities.values()) / total if total > 0 else fallback


def exemplar_curation(
    trajectories_by_trial: Mapping[int, Sequence[Trajectory]],
    *,
    candidates: Iterable[Trajectory] | None = None,
    prior: float | None = None,
) -> list[Trajectory]:
    """Per task, the success with the highest Q across all trials; sorted by task key.

    ``trajectories_by_trial``: every training episode of every trial; they
    are the evidence (through their ``retrievals``) and, unless
    ``candidates`` is given (e.g. the trials' final databases), also the
    candidates. Only successes of the ``train`` phase are candidates. A
    success nobody retrieved gets ``prior`` (default: ``population_prior``).
    Ties go to more evidence (larger weight), then the lower trial, attempt
    and id, so the result is deterministic.
    """
    if prior is not None and not 0.0 <= prior <= 1.0:
        raise CurationError(f"prior must lie in [0, 1]; got {prior}")
    episodes = _unique_by_id(t for trial in sorted(trajectories_by_trial) for t in trajectories_by_trial[trial])
    utilities = exemplar_utilities(episodes)
    default = population_prior(utilities) if prior is None else prior
    unseen = ExemplarUtility(default, 0.0, 0)

    def rank(t: Trajectory) -> tuple:
        u = utilities.get(t.id, unseen)
        return (-u.q, -u.weight, t.trial, t.attempt, t.id)

    best: dict[str, Trajectory] = {}
    for t in episodes if candidates is None else _unique_by_id(candidates):
        if t.success and t.phase == "train" and (t.task_key not in best or rank(t) < rank(best[t.task_key])):
            best[t.task_key] = t
    return [best[key] for key in sorted(best)]
