"""The ``operators/numpy`` suite: write an ML-library operator in NumPy until the verifier accepts it.

The ML-library domain of adaptive self-improvement (Zhang et al., ICML 2025):
an action is a whole implementation (a ```python block); the verifier runs it
in the sandbox on several random shapes against the reference and answers
with a compact reason (compile error, wrong shape, max abs error, sandbox
reason). Success only when every check passes. An episode allows
``max_attempts`` submissions; a failed one's reason is the next observation.

Every step's ``info`` records the sample's pass/fail (``passed``) and the
episode's samples so far (``samples``), so the stratified adaptive rounds
can count how many of a task's N samples passed; a passing step also carries
``structural_key`` (``compound.curation.dedup``) so structurally equal
solutions count once.
"""

from __future__ import annotations

import hashlib
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from compound.envs.base import SPLITS, EnvError
from compound.envs.operators.catalog import CATALOG, get_operator, split_of
from compound.envs.operators.spec import OperatorSpec
from compound.envs.operators.verify import PRELOAD, Verdict, extract_code, verify_submission
from compound.sandbox import Limits
from compound.types import Observation, StepResult, Task

ENV_ID = "operators/numpy"


@dataclass
class _Episode:
    task: Task
    op: OperatorSpec
    seed: int
    samples: list[bool] = field(default_factory=list)
    over: bool = False


def task_seed(name: str, seed: int) -> int:
    """The seed of a task's random checks: fixed per (operator, env seed)."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:4], "big")


def _positive(name: str, value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise EnvError(f"{name} must be a positive number, got {value!r}")
    return value


class OperatorsEnv:
    """Implement NumPy operators (softmax, attention, MoE dispatch ...) against references.

    >>> env = OperatorsEnv()  # doctest: +SKIP
    >>> task = next(t for t in env.tasks("train") if t.task_id == "softmax")  # doctest: +SKIP
    >>> env.reset(task); env.step(f"```python\\n{get_operator('softmax').source}```").success  # doctest: +SKIP
    True
    """

    action_kind = "code"  # the agent keeps the whole multi-line reply

    env_id = ENV_ID

    def __init__(
        self,
        *,
        max_attempts: int = 3,
        n_checks: int = 4,
        seed: int = 0,
        families: Sequence[str] | None = None,
        operators: Sequence[str] | None = None,
        wall_s: float = 10.0,
        cpu_s: float = 12.0,
        memory_mb: int = 1024,
    ) -> None:
        self.max_attempts = int(_positive("max_attempts", max_attempts))
        self.n_checks = int(_positive("n_checks", n_checks))
        self.seed = int(seed)
        # cpu_s above wall_s: a busy loop then ends as "timeout", the reason an agent understands.
        self.limits = Limits(
            cpu_s=_positive("cpu_s", cpu_s),
            wall_s=_positive("wall_s", wall_s),
            memory_mb=int(_positive("memory_mb", memory_mb)),
        )
        ops = list(CATALOG)
        if families is not None:
            known = {op.family for op in CATALOG}
            unknown = sorted(set(families) - known)
            if unknown:
                raise EnvError(f"unknown operator families {unknown}; known: {', '.join(sorted(known))}")
            ops = [op for op in ops if op.family in set(families)]
        if operators is not None:
            chosen = {get_operator(name).name for name in operators}
            ops = [op for op in ops if op.name in chosen]
        if not ops:
            raise EnvError("no operators selected: check the `families` and `operators` parameters")
        self._ops = {op.name: op for op in ops}
        self._episode: _Episode | None = None

    # ---------------------------------------------------------------- tasks
    def tasks(self, split: str) -> Sequence[Task]:
        """The split's operators in catalog order (split: a fixed hash of the name)."""
        if split not in SPLITS:
            raise EnvError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
        return tuple(self._task(op) for op in self._ops.values() if split_of(op.name) == split)

    def _task(self, op: OperatorSpec) -> Task:
        doc = textwrap.indent(op.description, "    ").lstrip()
        goal = f'Implement `{op.name}` in NumPy.\n\n{op.signature}\n    """{doc}"""'

        return Task(
            env_id=ENV_ID,
            task_id=op.name,
            split=split_of(op.name),
            goal=goal,
            category=op.family,
            params={"operator": op.name, "seed": task_seed(op.name, self.seed), "n_checks": self.n_checks},
        )

    # -------------------------------------------------------------- episode
    def reset(self, task: Task) -> Observation:
        if task.env_id != ENV_ID or task.task_id not in self._ops:
            raise EnvError(f"task {task.key} is not a task of this {ENV_ID} environment")
        op = self._ops[task.task_id]
        seed = int(task.params.get("seed", task_seed(op.name, self.seed)))
        self._episode = _Episode(task=task, op=op, seed=seed)
        return Observation(text=self._prompt(task, op))

    def _prompt(self, task: Task, op: OperatorSpec) -> str:
        provided = " and ".join(f"`{alias}`" for alias in PRELOAD)
        return (
            f"{task.goal}\n\n"
            f"Answer with one ```python code block that defines `{op.name}` with exactly this signature. "
            f"{provided} are already imported; importing the standard library, NumPy or SciPy is fine. "
            f"No files outside the working directory, no network, no processes. "
            f"The function is checked on {self.n_checks} random inputs against a reference "
            f"(rtol={op.rtol:g}, atol={op.atol:g}). Attempts: {self.max_attempts}."
        )

    def step(self, action: str) -> StepResult:
        episode = self._episode
        if episode is None:
            raise EnvError("call reset(task) before step(action)")
        if episode.over:
            raise EnvError("the episode is over; call reset(task) to start another")
        attempt = len(episode.samples)
        code = extract_code(action)
        verdict = verify_submission(
            episode.op, code, seed=[episode.seed, attempt], n_checks=self.n_checks, limits=self.limits
        )
        episode.samples.append(verdict.passed)
        left = self.max_attempts - len(episode.samples)
        episode.over = verdict.passed or left <= 0
        return StepResult(
            observation=Observation(text=self._feedback(verdict, left)),
            reward=1.0 if verdict.passed else 0.0,
            terminated=episode.over,
            success=verdict.passed,
            info=self._info(episode, verdict, code, attempt),
        )

    @staticmethod
    def _feedback(verdict: Verdict, left: int) -> str:
        if verdict.passed:
            return f"PASS: {verdict.reason}."
        tail = f" Attempts left: {left}." if left > 0 else " No attempts left."
        return f"FAIL: {verdict.reason}.{tail}"

    def _info(self, episode: _Episode, verdict: Verdict, code: str | None, attempt: int) -> dict[str, Any]:
        info: dict[str, Any] = {
            "operator": episode.op.name,
            "family": episode.op.family,
            "attempt": attempt,
            "passed": verdict.passed,
            "reason": verdict.reason,
            "sandbox_reason": verdict.sandbox_reason,
            "checks_passed": verdict.checks_passed,
            "n_checks": verdict.n_checks,
            "samples": list(episode.samples),
            "verify_s": round(verdict.duration_s, 4),
            "structural_key": None,
        }
        if verdict.passed and code:
            from compound.curation.dedup import structural_key  # lazy: curation is optional here

            info["structural_key"] = structural_key(code)
        return info

    def close(self) -> None:
        self._episode = None
