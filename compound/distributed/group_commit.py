"""A worker's pushes to the curator, sent in batches (group commit) and acknowledged together.

Each finished training episode is pushed with ``await commits.push(item)``,
which returns once the curator has made it durable. Pushes are not sent one
call each: at most one batch is in flight per worker, and every push that
arrives while it is travels in the next one, up to ``max_items``. So a quiet
worker sends a push alone after one turn of its event loop (no waiting for a
timer), and a busy one sends a batch per curator round trip, however many
episodes finished meanwhile: the wait a push adds is bounded by the round
trip before it, a few milliseconds, and the curator's cost is one call and one
durable record per batch (``Curator.submit_batch``) instead of one per episode.

A batch the curator refuses (a success whose vectors do not fit its embedder)
changes nothing there; its items are then sent one by one, so only the bad
one fails, with the curator's error naming it. Nothing here imports Ray: the
caller passes ``send``, which does the call (and its retries).

>>> import asyncio
>>> sent = []
>>> async def send(items):
...     sent.append(list(items))
...     return [len(sent)] * len(items)
>>> async def main():
...     commits = GroupCommit(send)
...     return await asyncio.gather(*(commits.push(i) for i in range(5)))
>>> asyncio.run(main()), sent
([1, 1, 1, 1, 1], [[0, 1, 2, 3, 4]])
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Sequence

from compound.curation.errors import CurationError

MAX_ITEMS = 256
"""Most pushes in one batch (a curator call and one durable record)."""


class GroupCommit:
    """Batches ``push`` calls into ``send(items) -> results`` calls, one batch in flight at a time."""

    def __init__(self, send: Callable[[Sequence[Any]], Awaitable[Sequence[Any]]], max_items: int = MAX_ITEMS) -> None:
        if max_items < 1:
            raise ValueError(f"GroupCommit needs max_items >= 1, got {max_items}")
        self._send = send
        self.max_items = max_items
        self._pending: list[tuple[Any, asyncio.Future]] = []
        self._drainer: asyncio.Task | None = None
        self.batches = 0  # calls sent (tests, benchmarks: pushes per call = pushed / batches)
        self.pushed = 0

    async def push(self, item: Any) -> Any:
        """Send ``item`` in the next batch; returns its result once the batch is acknowledged."""
        future = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def flush(self) -> None:
        """Wait until every push made so far is acknowledged (or failed)."""
        while self._drainer is not None and not self._drainer.done():
            await asyncio.shield(self._drainer)

    async def _drain(self) -> None:
        await asyncio.sleep(0)  # pushes made in the same turn of the event loop travel together
        while self._pending:
            batch, self._pending = self._pending[: self.max_items], self._pending[self.max_items :]
            await self._deliver(batch)

    async def _deliver(self, batch: list[tuple[Any, asyncio.Future]]) -> None:
        items = [item for item, _ in batch]
        try:
            results = await self._send(items)
        except CurationError as exc:
            if len(batch) > 1:  # refused as a whole before anything changed: find the bad one
                for one in batch:
                    await self._deliver([one])
                return
            _fail(batch, exc)
            return
        except BaseException as exc:  # noqa: BLE001 -- every waiting push gets the reason
            _fail(batch, exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        self.batches += 1
        self.pushed += len(batch)
        for (_, future), result in zip(batch, results):
            if not future.done():
                future.set_result(result)


def _fail(batch: list[tuple[Any, asyncio.Future]], exc: BaseException) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(exc)
