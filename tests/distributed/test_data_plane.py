"""The data plane on real Ray: a worker fetches only the chunks it lacks; a trial copy moves nothing.

The curator and an agent worker are real actors; trajectories are made by
hand (no episode runs), since what is measured is what moves between them.
"""

from __future__ import annotations

import pytest

from compound.config import validate_config
from compound.curation.retrieval import TfidfEmbedder
from compound.curation.store.vectors import embed_trajectories
from compound.types import Step, Trajectory

pytestmark = pytest.mark.slow


def success(i: int, trial: int = 0) -> Trajectory:
    steps = tuple(Step(f"room {i} step {s}", f"go {s}") for s in range(3))
    return Trajectory(f"t{i}", "toy", str(i), "train", f"find thing {i}", "find", "walk", steps, True, True, False, trial=trial)


@pytest.fixture()
def actors(ray_session):
    from compound.distributed.curator import Curator
    from compound.distributed.engines import start_engines
    from compound.distributed.worker import AgentWorker

    cfg = validate_config({
        "llm": {"engine": "scripted", "scripted": {"script": ["look"]}},
        "curation": {"embedder": "tfidf", "trials": 2},
        "env": {"id": "twx/coin"},
    })
    engines = start_engines(cfg.llm, name_prefix="data-plane")
    curator = Curator.options(num_cpus=0, name="data-plane-curator").remote(2, "tfidf", dedup=True)
    worker = AgentWorker.options(num_cpus=0).remote(cfg, ["data-plane-engine-0"], "data-plane-curator", "scripted")
    yield ray_session, curator, worker
    for actor in (worker, curator, *engines):
        ray_session.kill(actor)


def test_bytes_fetched_grow_with_the_delta_not_with_the_store(actors):
    ray, curator, worker = actors
    embedder = TfidfEmbedder()  # the config's tfidf: the same vectors the worker would compute
    batch = [success(i) for i in range(20)]
    vectors = embed_trajectories(batch, embedder)
    for t, v in zip(batch, vectors):
        ray.get(curator.submit.remote(t, v, "test"))
    ray.get(worker.refresh.remote(0))
    first = ray.get(worker.fetch_stats.remote())
    assert first["chunks"] == 1
    assert first["bytes"] == sum(v.key.nbytes + v.plan.nbytes + v.observation.nbytes + v.reasoning.nbytes for v in vectors)

    late = success(99)
    (late_vectors,) = embed_trajectories([late], embedder)
    ray.get(curator.submit.remote(late, late_vectors, "test"))
    version = ray.get(worker.refresh.remote(0))
    second = ray.get(worker.fetch_stats.remote())
    assert second["chunks"] == 2
    assert second["bytes"] - first["bytes"] == late_vectors.key.nbytes * 2 + late_vectors.observation.nbytes * 2
    assert version == ray.get(curator.version.remote(0))

    ray.get(worker.refresh.remote(0))  # nothing new
    assert ray.get(worker.fetch_stats.remote()) == second

    ray.get(curator.copy_store.remote(0, 1))  # PBT exploit: trial 1 takes trial 0's store
    ray.get(worker.refresh.remote(1))
    assert ray.get(worker.fetch_stats.remote()) == second, "the copy's chunks were already here: nothing moved"
    assert ray.get(curator.stats.remote())[1]["chunks"] == 2


def test_vectors_of_the_wrong_shape_are_refused_naming_the_worker(actors):
    ray, curator, _ = actors
    t = success(1)
    (v,) = embed_trajectories([t], TfidfEmbedder(64))  # another width than the curator's
    with pytest.raises(Exception, match="refused a trajectory from worker w-7.*do not fit"):
        ray.get(curator.submit.remote(t, v, "w-7"))
    assert ray.get(curator.stats.remote())[0]["attempts"] == 0, "nothing of the refused trajectory was kept"


def test_a_repeated_solution_is_counted_not_published_again(actors):
    """Streaming dedup: a second attempt of the same task with the same actions is kept as data, counted
    onto the first, and never reaches the workers; a different solution of that task does."""
    import dataclasses

    ray, curator, worker = actors
    embedder = TfidfEmbedder()
    first = success(5)
    again = dataclasses.replace(first, id="t5-again", attempt=1)
    other = dataclasses.replace(first, id="t5-other", attempt=2, steps=first.steps[:1])
    for t in (first, again, other):
        ray.get(curator.submit.remote(t, embed_trajectories([t], embedder)[0], "test"))
    assert ray.get(curator.take_collapsed.remote())[0] == {"t5-again": "t5"}
    assert ray.get(curator.copies.remote())[0] == {"t5": 1}
    stats = ray.get(curator.stats.remote())[0]
    assert stats["attempts"] == 3 and stats["retrievable"] == 2
    ray.get(worker.refresh.remote(0))
    assert ray.get(worker.fetch_stats.remote())["chunks"] == 1
