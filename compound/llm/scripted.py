"""A scripted stand-in LLM: a TEST DOUBLE for orchestration logic, never a feature.

It answers from a fixed script or a function of the messages, with no model
behind it, so agent-loop, curator and distributed tests can run without
loading weights. Anything that depends on what a real model does is tested
with the real embedded model instead.
"""

from __future__ import annotations

import asyncio
from typing import Callable, Sequence

from compound.llm.base import Completion, Message


class ScriptedLLM:
    """Test double: replies from ``script`` or ``respond(messages)``.

    Without a ``seed`` the script is cycled call by call. With one (the agent
    sends its episode seed plus the call's index) the reply is
    ``script[seed % len(script)]``: an episode's replies then depend only on
    its own seed, never on how many calls concurrent episodes made first, so
    a distributed run of the double gives the same outcomes however Ray
    schedules it.

    >>> import asyncio
    >>> llm = ScriptedLLM(["go north"])
    >>> asyncio.run(llm.generate([{"role": "user", "content": "hi"}])).text
    'go north'
    >>> two = ScriptedLLM(["a", "b"])
    >>> [asyncio.run(two.generate([], seed=s)).text for s in (7, 7, 8)]
    ['b', 'b', 'a']
    """

    def __init__(
        self,
        script: Sequence[str] = (),
        respond: Callable[[Sequence[Message]], str] | None = None,
        model_name: str = "scripted-test-double",
        delay_s: float = 0.0,
    ) -> None:
        if not script and respond is None:
            raise ValueError("ScriptedLLM needs a script or a respond function")
        self._script = list(script)
        self._respond = respond
        self._calls = 0
        self.model_name = model_name
        self.delay_s = delay_s
        self.requests: list[list[Message]] = []

    async def generate(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int = 64,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
        seed: int | None = None,
    ) -> Completion:
        self.requests.append(list(messages))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self._respond is not None:
            text = self._respond(messages)
        else:
            position = self._calls if seed is None else seed
            text = self._script[position % len(self._script)]
        self._calls += 1
        for s in stop or ():
            if s and s in text:
                text = text[: text.index(s)]
        prompt_tokens = sum(len(m["content"].split()) for m in messages)
        return Completion(text=text, prompt_tokens=prompt_tokens, completion_tokens=len(text.split()))

    async def aclose(self) -> None:
        return None
