"""The six suites' oracles: which tasks each plays (a CI sample, or the full set), in units.

A unit is what one test case covers: a TextWorldExpress game, a ScienceWorld
task type, an ALFWorld task type, an SQL source, a Wordcraft setting, an
operator family. ``OracleRunner.run(suite, unit)`` plays every task of the
unit (``play.check_case``) and returns the results; environments are kept
open for the runner's life, so the Java suites start their shared JVM once
(``compound.envs.shared_jvm``) however many units they play.

Sample (``full=False``, what CI runs) and full sets:

| suite | sample | full |
|---|---|---|
| twx | 8 games x first 2 test tasks | 8 games x the 50 test tasks (the env's default split) |
| sciworld | 4 task types (``SCIWORLD_SAMPLE``) x first test variation | 30 types x first ``sciworld_variations`` (1) test variations |
| alfworld | 6 written games (one per task type) | the 24 written games (``alfworld_games.py``), or with ``alfworld_data`` the download's test split (134 games, their walkthroughs) |
| sql | InterCode's 23 and compound's 194, every split | the same |
| wordcraft | depths 1-4 and depth 2 with 4 distractors, first 20 test tasks each | every task of those 5 settings, every split (4,050) |
| operators | 3 operators | all 37 references |
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from compound.envs import make
from compound.oracles import alfworld_games
from compound.oracles.play import Case, CaseResult, check_case
from compound.oracles.puzzles import operator_cases, sql_cases, wordcraft_cases
from compound.oracles.text_games import SCIWORLD_SAMPLE, TWX_GAMES, gold_cases
from compound.types import Task

SUITES = ("twx", "sciworld", "alfworld", "sql", "wordcraft", "operators")
SPLITS = ("train", "dev", "test")
WORDCRAFT_SETTINGS = {"d1": (1, 0), "d2": (2, 0), "d3": (3, 0), "d4": (4, 0), "d2x4": (2, 4)}
"""Wordcraft unit -> (depth, distractors)."""
OPERATOR_SAMPLE = ("softmax", "layer_norm", "scaled_dot_product_attention")


def units(suite: str, full: bool = False) -> list[str]:
    """The units of ``suite`` (see the module doc)."""
    if suite == "twx":
        return list(TWX_GAMES)
    if suite == "sciworld":
        from compound.envs.scienceworld.catalog import TASKS

        return list(TASKS) if full else list(SCIWORLD_SAMPLE)
    if suite == "alfworld":
        from compound.envs.alfworld.games import TASK_TYPES

        return list(TASK_TYPES)
    if suite == "sql":
        return ["intercode", "compound"]
    if suite == "wordcraft":
        return list(WORDCRAFT_SETTINGS)
    if suite == "operators":
        from compound.envs.operators.catalog import families

        return families() if full else ["sample"]
    raise ValueError(f"unknown suite {suite!r}; one of {', '.join(SUITES)}")


class OracleRunner:
    """Plays units of the suites, keeping each environment open until ``close``."""

    def __init__(
        self,
        full: bool = False,
        workdir: Path | None = None,
        sciworld_variations: int = 1,
        alfworld_data: str | None = None,
    ) -> None:
        self.full = full
        self.sciworld_variations = sciworld_variations
        self.alfworld_data = alfworld_data
        self._tmp = None if workdir is not None else tempfile.TemporaryDirectory(prefix="compound-oracles-")
        self.workdir = Path(workdir) if workdir is not None else Path(self._tmp.name)
        self._envs: dict[tuple[Any, ...], Any] = {}

    def run(self, suite: str, unit: str, on_result: Callable[[CaseResult], None] | None = None) -> list[CaseResult]:
        """Play every task of ``unit``; ``on_result`` sees each result as it comes."""
        env, cases = self._cases(suite, unit)
        results = []
        for case in cases:
            result = check_case(env, case) if case.gold else _no_gold(case)
            results.append(result)
            if on_result is not None:
                on_result(result)
        return results

    def _env(self, key: tuple[Any, ...], factory: Callable[[], Any]) -> Any:
        if key not in self._envs:
            self._envs[key] = factory()
        return self._envs[key]

    def _cases(self, suite: str, unit: str) -> tuple[Any, Iterator[Case]]:
        if unit not in units(suite, self.full):
            raise ValueError(f"{suite} has no unit {unit!r}; units: {', '.join(units(suite, self.full))}")
        if suite == "twx":
            size = 50 if self.full else 2
            env = self._env((suite, unit), lambda: make(f"twx/{unit}", train_size=0, dev_size=0, test_size=size))
            return env, gold_cases(env, env.tasks("test"))
        if suite == "sciworld":
            per_type = self.sciworld_variations if self.full else 1
            env = self._env((suite, unit), lambda: make(f"sciworld/{unit}", max_variations=per_type))
            return env, gold_cases(env, env.tasks("test"))
        if suite == "alfworld":
            env = self._env((suite,), self._alfworld_env)
            tasks = [t for t in env.tasks("test") if t.category == unit]
            return env, gold_cases(env, tasks if self.full else tasks[:1])
        if suite == "sql":
            env = self._env((suite, unit), lambda: make(f"sql/spider-{unit}"))
            return env, sql_cases(env, _all_splits(env))
        if suite == "wordcraft":
            depth, distractors = WORDCRAFT_SETTINGS[unit]
            env = self._env((suite, unit), lambda: make("wordcraft", depth=depth, distractors=distractors))
            tasks = _all_splits(env) if self.full else list(env.tasks("test"))[:20]
            return env, wordcraft_cases(env, tasks)
        env = self._env((suite,), lambda: make("operators/numpy"))
        tasks = _all_splits(env)
        if self.full:
            tasks = [t for t in tasks if t.category == unit]
        else:
            tasks = sorted((t for t in tasks if t.task_id in OPERATOR_SAMPLE), key=lambda t: t.task_id)
        return env, operator_cases(env, tasks)

    def _alfworld_env(self) -> Any:
        if self.alfworld_data:
            return make("alfworld/all", data_path=self.alfworld_data)
        root = alfworld_games.write_games(self.workdir / "alfworld", games=_alfworld_games(self.full))
        return make("alfworld/all", data_path=str(root))

    def close(self) -> None:
        for env in self._envs.values():
            env.close()
        self._envs.clear()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> "OracleRunner":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _all_splits(env: Any) -> list[Task]:
    return [t for split in SPLITS for t in env.tasks(split)]


def _alfworld_games(full: bool) -> Sequence[alfworld_games.GameSpec]:
    if full:
        return alfworld_games.GAMES
    first: dict[str, alfworld_games.GameSpec] = {}
    for spec in alfworld_games.GAMES:
        first.setdefault(spec.task_type, spec)
    return list(first.values())


def _no_gold(case: Case) -> CaseResult:
    return CaseResult(case.task.task_id, 0, False, False, note="no gold solution found")
