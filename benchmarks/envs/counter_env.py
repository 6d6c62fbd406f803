"""A trivial pure-Python environment for measuring what surrounds environments (``benchmarks/throughput.py`` part e).

``bench/counter``: the goal names a number of steps; every action counts
one, and the episode ends (as a success) at that count. It costs
microseconds, so what a benchmark measures with it is the driver, the
curator, the workers and Ray, not a simulator.
"""

from compound.envs import register
from compound.types import Observation, StepResult, Task


class CounterEnv:
    env_id = "bench/counter"

    def __init__(self, n: int = 64, steps: int = 10) -> None:
        self.n, self.steps = n, steps
        self.count = 0

    def tasks(self, split):
        return [Task(self.env_id, f"{split}/{i}", split, goal=f"count to {self.steps}", category="count") for i in range(self.n)]

    def reset(self, task):
        self.count = 0
        return Observation("0", valid_actions=("count",))

    def step(self, action):
        self.count += 1
        done = self.count >= self.steps
        return StepResult(Observation(str(self.count), valid_actions=("count",)), reward=float(done), terminated=done, success=done)

    def close(self):
        pass


register("bench/counter", CounterEnv, description="count to N: a trivial environment for orchestration benchmarks", overwrite=True)
