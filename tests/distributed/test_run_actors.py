"""A run's actors on real Ray: what Ray restarts them from must outlive everything else.

Ray restarts a worker or the curator (``max_restarts``) by running its
constructor again with the arguments it was first given. An argument that
holds an object reference (an actor handle, an ``ObjectRef``) is one the
restart depends on and nothing pins for it (ray-project/ray#53727), so the
constructors get plain values: the other actors by name.
"""

from __future__ import annotations

import pytest

from compound.config import validate_config

pytestmark = pytest.mark.slow


class _Recorder:
    """Stands in for an actor class: records each ``.options(...).remote(*args, **kwargs)`` and creates the real actor."""

    def __init__(self, actor_class):
        self.actor_class, self.calls = actor_class, []

    def options(self, **options):
        recorder = self

        class _Remote:
            def remote(self, *args, **kwargs):
                recorder.calls.append((options, args, kwargs))
                return recorder.actor_class.options(**options).remote(*args, **kwargs)

        return _Remote()


def test_restartable_actors_get_no_object_references_and_find_the_others_by_name(ray_session, tmp_path, monkeypatch):
    from compound.distributed import run_actors
    from compound.distributed.placement import asked

    cfg = validate_config({
        "llm": {"engine": "scripted", "scripted": {"script": ["look"]}},
        "curation": {"embedder": "tfidf"},
        "env": {"id": "twx/coin"},
        "distributed": {"workers": 2},
    })
    workers, curator = _Recorder(run_actors.AgentWorker), _Recorder(run_actors.Curator)
    monkeypatch.setattr(run_actors, "AgentWorker", workers)
    monkeypatch.setattr(run_actors, "Curator", curator)
    actors = run_actors.RunActors()
    actors.start(cfg, "restartable", str(tmp_path / "curator"), False)
    try:
        serialize = ray_session._private.worker.global_worker.get_serialization_context().serialize
        for options, args, kwargs in [*workers.calls, *curator.calls]:
            assert options["max_restarts"] != 0
            assert asked(options) == {}, "asking for no resources, nothing can keep them waiting to be placed"
            assert serialize((args, kwargs)).contained_object_refs == [], f"constructor arguments hold references: {args}"
        assert len(workers.calls) == 2
        assert ray_session.get([w.ready.remote() for w in actors.workers]) == [True, True], "the workers found the engine and curator"
        assert actors.engine_facts["engine"] == "scripted" and "cpu" in actors.engine_facts["machine"]
    finally:
        actors.release()
