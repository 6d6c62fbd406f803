"""An episode's chat history that only grows at its end, trimmed rarely and in chunks.

Engines reuse the cache of the longest prefix a request shares with earlier
ones, so each request of an episode should be the previous one plus new
messages. ``Transcript`` keeps the system message and one group of messages
per finished step; a request is those plus the current step's messages.

Keeping every step would make late steps expensive, so at most
``history_steps`` steps are kept. Dropping the oldest step at every step
would shift the whole history and break the cached prefix every time;
instead, when the history grows past the limit, the oldest steps are dropped
in one chunk down to about half the limit. The prefix then breaks once per
``history_steps // 2 + 1`` steps rather than at every one.
"""

from __future__ import annotations

from typing import Sequence

from compound.llm.base import Message


def system(text: str) -> Message:
    return {"role": "system", "content": text}


def user(text: str) -> Message:
    return {"role": "user", "content": text}


def assistant(text: str) -> Message:
    return {"role": "assistant", "content": text}


def kept_after_trim(history_steps: int) -> int:
    """Steps left after a trim: half the limit (at least 1), so trims are rare.

    >>> [kept_after_trim(h) for h in (1, 2, 10, 11)]
    [1, 1, 5, 5]
    """
    return max(1, history_steps // 2)


class Transcript:
    """System message, a fixed preamble, the last steps' messages; ``request`` adds the current step's.

    >>> t = Transcript("sys", history_steps=2)
    >>> t.commit([user("o1"), assistant("a1")])
    >>> [m["content"] for m in t.request(user("o2"))]
    ['sys', 'o1', 'a1', 'o2']
    """

    def __init__(self, system_text: str, history_steps: int, preamble: Sequence[Message] = ()) -> None:
        if history_steps < 1:
            raise ValueError(f"history_steps must be >= 1, got {history_steps}")
        self._system = system(system_text)
        self._preamble = tuple(preamble)  # demonstrations: never trimmed
        self._steps: list[tuple[Message, ...]] = []
        self.history_steps = history_steps
        self.trims = 0

    @property
    def steps_kept(self) -> int:
        return len(self._steps)

    def request(self, *current: Message) -> list[Message]:
        """The messages to send: system, kept steps, then ``current`` (a new list each call)."""
        messages = [self._system, *self._preamble]
        for group in self._steps:
            messages.extend(group)
        messages.extend(current)
        return messages

    def commit(self, step_messages: Sequence[Message]) -> None:
        """Append one finished step's messages (in the form worth keeping); trim when over the limit."""
        self._steps.append(tuple(step_messages))
        if len(self._steps) > self.history_steps:
            del self._steps[: len(self._steps) - kept_after_trim(self.history_steps)]
            self.trims += 1
