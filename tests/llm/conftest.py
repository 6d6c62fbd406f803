"""Shared fixtures for the llm tests: the real embedded model, loaded once per session.

The exactness tests use float32 weights (``quantize="none"``, the default); the
opt-in int8 engine has its own tests (see test_hf_engine.py for why). Their
engines do not reuse greedy replies, so that a prompt another test already sent
still runs through the model; reply reuse has its own tests (test_reply_reuse.py).

The first run converts the embedded GGUF into the default compound cache
(~20-30 s, once per machine); later loads take a fraction of a second.
"""

import pytest

AGENT_SYSTEM = (
    "You are an agent in a text adventure. Each turn you see an observation and reply with one "
    "action, like 'open door', 'take key' or 'go north'. Reply with the action only.\n"
    "Example:\nObservation: You are in a kitchen. There is a fridge.\nAction: open fridge"
)


def _agent_conversation(episode: int, turns: int) -> list[dict[str, str]]:
    """An append-only agent dialogue: turn t+1's prompt extends turn t's."""
    messages = [
        {"role": "system", "content": AGENT_SYSTEM},
        {"role": "user", "content": f"Task {episode}: find the key in room {episode}. Observation: a hallway."},
    ]
    for t in range(turns):
        messages.append({"role": "assistant", "content": f"go north {t}"})
        messages.append({"role": "user", "content": f"Observation: room {t}, a box and a door {episode}."})
    return messages


@pytest.fixture(scope="session")
def agent_conversation():
    """``agent_conversation(episode, turns)`` -> messages of an append-only agent dialogue."""
    return _agent_conversation


@pytest.fixture(scope="session")
def hf_engine():
    from compound.llm.hf.engine import HFEngine

    engine = HFEngine(max_batch=4, max_wait_ms=20, dtype="float32", quantize="none", reuse_replies=False)  # exact (see test_hf_engine.py)
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def hf_engine_no_prefix_cache():
    from compound.llm.hf.engine import HFEngine

    engine = HFEngine(max_batch=4, prefix_cache_tokens=0, dtype="float32", quantize="none", reuse_replies=False)
    yield engine
    engine.close()
