"""Engine routing: the pure decisions, backpressure, and RemoteLLM keeping an episode on one engine (real Ray)."""

from __future__ import annotations

import asyncio
import doctest

import pytest
from ray.exceptions import RayActorError

from compound.distributed import routing
from compound.distributed.remote_llm import RemoteLLM
from compound.distributed.routing import Router, home_engine
from compound.llm.base import Completion, Unavailable


def test_the_pure_decisions_say_what_their_docstrings_show():
    assert doctest.testmod(routing).failed == 0


def test_new_episodes_go_to_the_least_loaded_engine_and_equal_loads_take_turns():
    router = Router(3)
    first = [router.place_episode(None) for _ in range(3)]
    assert sorted(first) == [0, 1, 2], "equal loads take turns instead of all landing on engine 0"
    router.end_episode(1)
    assert router.place_episode(None) == 1, "the engine an episode just left is now the least loaded"
    assert router.episodes == [1, 1, 1]


def test_an_example_set_prefers_the_engine_holding_it_until_that_one_is_overloaded_by_more_than_the_slack():
    router = Router(2, slack=1)
    home = home_engine("set-A", 2)
    assert router.place_episode("set-A") == home
    assert router.place_episode("set-A") == home, "1 more live episode than the other engine is within the slack"
    other = router.place_episode("set-A")
    assert other == 1 - home, "2 more would exceed it: the least-loaded engine takes the episode"
    assert router.affinity["set-A"] == other, "the prefix is now remembered where it was last sent"


def test_workers_agree_where_a_prefix_lives_without_talking():
    quiet, busy = Router(4), Router(4)
    busy.place_episode(None)  # another history, within the slack
    for key in [f"set-{i}" for i in range(20)]:
        a, b = quiet.place_episode(key), busy.place_episode(key)
        assert a == b == home_engine(key, 4)
        quiet.end_episode(a)
        busy.end_episode(b)
    assert len({home_engine(f"set-{i}", 4) for i in range(40)}) == 4, "homes spread over the engines"


def test_a_lost_engine_is_avoided_and_forgets_its_prefixes_until_it_is_back():
    router = Router(2, slack=8)
    home = router.place_episode("set-A")
    router.mark_down(home)
    assert "set-A" not in router.affinity, "a restarted engine's cache is empty"
    assert router.place_episode("set-A") == 1 - home
    router.mark_up(home)
    router.mark_down(1 - home)
    assert router.place_episode(None) == home
    router.mark_down(home)
    assert router.place_episode(None) in (0, 1), "all down: the call still goes somewhere (it waits for a restart)"


async def test_a_call_beyond_the_bound_waits_for_a_slot_then_proceeds_when_one_frees():
    router = Router(1, max_outstanding=2)
    entered = [asyncio.Event() for _ in range(3)]
    leave = [asyncio.Event() for _ in range(3)]
    log: list[str] = []

    async def call(i: int) -> None:
        async with router.slot(0):
            log.append(f"enter {i}")
            entered[i].set()
            await leave[i].wait()
        log.append(f"exit {i}")

    tasks = [asyncio.create_task(call(i)) for i in range(3)]
    await entered[0].wait()
    await entered[1].wait()
    assert not entered[2].is_set() and router.waits == 1 and router.outstanding == [2]
    leave[0].set()
    await entered[2].wait()
    assert log.index("exit 0") < log.index("enter 2"), "the third call entered only once a slot was free"
    leave[1].set()
    leave[2].set()
    await asyncio.gather(*tasks)
    assert router.outstanding == [0]


async def test_least_loaded_calls_wait_for_any_engine_then_take_the_one_that_freed():
    router = Router(2, max_outstanding=1)
    entered: dict[int, int] = {}
    leave = {i: asyncio.Event() for i in range(3)}
    got = {i: asyncio.Event() for i in range(3)}

    async def call(i: int) -> None:
        async with router.slot(None) as engine:
            entered[i] = engine
            got[i].set()
            await leave[i].wait()

    tasks = [asyncio.create_task(call(i)) for i in range(3)]
    await got[0].wait()
    await got[1].wait()
    assert sorted(entered.values()) == [0, 1] and not got[2].is_set()
    freed = entered[1]
    leave[1].set()
    await got[2].wait()
    assert entered[2] == freed
    leave[0].set()
    leave[2].set()
    await asyncio.gather(*tasks)


class _Method:
    def __init__(self, fn):
        self.remote = fn


class FlakyEngineHandle:
    """TEST DOUBLE of an engine actor handle: ``generate`` raises Ray's actor error while ``lost`` (a killed actor)."""

    def __init__(self, lost: bool) -> None:
        self.lost = lost
        self.calls = 0

        async def generate(messages, kwargs):
            self.calls += 1
            if self.lost:
                raise RayActorError()
            return Completion(text="ok")

        async def healthy():
            return not self.lost

        self.generate, self.healthy = _Method(generate), _Method(healthy)


async def test_an_episode_whose_engine_died_fails_as_transient_and_its_rerun_goes_elsewhere():
    handles = [FlakyEngineHandle(lost=False), FlakyEngineHandle(lost=False)]
    llm = RemoteLLM(handles, "m", slack=8)
    messages = [{"role": "system", "content": "goal"}, {"role": "user", "content": "obs"}]
    first = llm.for_episode()
    await first.generate(messages)
    victim = first.engine
    handles[victim].lost = True
    with pytest.raises(Unavailable):
        await first.generate(messages)
    assert first.engine is None and llm.router.down[victim], "unbound, and its engine avoided"
    rerun = llm.for_episode()
    await rerun.generate(messages)
    assert rerun.engine == 1 - victim, "the same prefix goes to the live engine"
    await llm.aclose()


@pytest.mark.slow
async def test_remote_llm_keeps_each_episode_on_one_engine_and_least_loaded_scatters_it(ray_session):
    """Two real scripted TEST-DOUBLE engine actors; each reports the requests it served."""
    import ray

    from compound.config import validate_config
    from compound.distributed.engines import start_engines, stop_engines

    cfg = validate_config({"llm": {"engine": "scripted", "scripted": {"script": ["look"]}, "num_engines": 2}})
    handles = start_engines(cfg.llm)
    try:

        async def engines_of_each_episode(policy: str) -> dict[str, set[int]]:
            await asyncio.gather(*(h.record.remote() for h in handles))
            llm = RemoteLLM(handles, "m", routing=policy)

            async def episode(name: str, turns: int) -> None:
                client = llm.for_episode()
                for turn in range(turns):
                    await client.generate([{"role": "system", "content": name}, {"role": "user", "content": f"turn {turn}"}])
                await client.aclose()

            await asyncio.gather(episode("episode A", 3), episode("episode B", 5))
            await episode("episode C", 4)  # alone: every engine is idle at each of its calls
            served: dict[str, set[int]] = {}
            for engine, requests in enumerate(await asyncio.gather(*(h.recorded.remote() for h in handles))):
                for messages, _ in requests:
                    served.setdefault(messages[0]["content"], set()).add(engine)
            return served

        sticky = await engines_of_each_episode("sticky")
        assert sticky.keys() == {"episode A", "episode B", "episode C"}
        assert all(len(engines) == 1 for engines in sticky.values()), f"each episode on one engine: {sticky}"
        scattered = await engines_of_each_episode("least_loaded")
        assert scattered["episode C"] == {0, 1}, "per-call routing takes turns between idle engines, scattering the episode"
        stats = ray.get([h.stats.remote() for h in handles])
        assert sum(s["calls"] for s in stats) == 2 * (3 + 5 + 4), "stats count every call served"
    finally:
        stop_engines(handles)
