"""Decode many sequences of different lengths together, joining and leaving at any step.

Rows live in one preallocated buffer per layer, ``[max_rows, kv_heads,
capacity, head_dim]``, right-aligned: every row's newest token sits in
column ``end - 1`` and shorter rows are left-padded; the attention mask
hides the padding. Padding is never cleared: it holds zeros from allocation
or the states of a row that left, finite numbers either way, and a masked
column gets an attention weight of exactly 0, so what it holds cannot
change a result (NaN could, which is why buffers start as zeros, not empty).
Each row gets its own position ids, so a row's numbers are those of
decoding it alone (up to float rounding).

Why not transformers' own cache: ``DynamicCache`` copies the whole cache on
every generated token (a ``torch.cat`` per layer) and knows nothing of rows
joining or leaving. Here a token is written in place (``packed.DecodeRows``
writes each pass's new keys and values at column ``end``); a row joins by copying
only itself into a free slot; a finished row leaves by moving the last row
into its slot; all-padding columns on the left are dropped by moving a start
pointer. Whole-buffer copies happen only when the buffer must grow.

The batch is a container; the engine decides who joins and when.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import torch

from compound.llm.hf.kv import KV, kv_tokens

T = TypeVar("T")


class DecodeBatch(Generic[T]):
    """Rows (caller objects ``T``) with their KV states, ready for one-token decode steps.

    >>> import torch
    >>> batch = DecodeBatch(max_rows=2)
    >>> batch.add("a", [(torch.ones(1, 1, 3, 2), torch.ones(1, 1, 3, 2))])
    >>> batch.add("b", [(torch.ones(1, 1, 1, 2), torch.ones(1, 1, 1, 2))])
    >>> mask, positions = batch.step_inputs()
    >>> mask.tolist(), positions.flatten().tolist()
    ([[1, 1, 1, 1], [0, 0, 1, 1]], [3, 1])
    """

    def __init__(self, max_rows: int, min_growth: int = 64) -> None:
        self.max_rows = max_rows
        self.min_growth = min_growth
        self.items: list[T] = []
        self.lengths: list[int] = []  # cached tokens per row = position of its next token
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []
        self.start = self.end = 0
        self.device = torch.device("cpu")

    def __len__(self) -> int:
        return len(self.items)

    @property
    def capacity(self) -> int:
        return self.keys[0].shape[2] if self.keys else 0

    @property
    def width(self) -> int:
        return self.end - self.start

    def add(self, item: T, kv: KV) -> None:
        """Append a row whose cache is ``kv`` (one row, any length)."""
        if len(self.items) >= self.max_rows:
            raise ValueError(f"batch is full ({self.max_rows} rows)")
        n = kv_tokens(kv)
        if not self.items:
            self._allocate(kv, n)
        elif n > self.end or self.end >= self.capacity:
            self._relayout(max(self.width, n))
        if n > self.width:  # widen to the left: the columns there are padding for the rows already in
            self.start = self.end - n
        slot = len(self.items)
        for (k, v), kbuf, vbuf in zip(kv, self.keys, self.values):
            kbuf[slot, :, self.end - n : self.end] = k[0]
            vbuf[slot, :, self.end - n : self.end] = v[0]
        self.items.append(item)
        self.lengths.append(n)

    def remove(self, slot: int) -> T:
        """Drop a row; the last row moves into its slot (order is not kept)."""
        last = len(self.items) - 1
        item = self.items[slot]
        if slot != last:
            for kbuf, vbuf in zip(self.keys, self.values):
                kbuf[slot, :, self.start : self.end] = kbuf[last, :, self.start : self.end]
                vbuf[slot, :, self.start : self.end] = vbuf[last, :, self.start : self.end]
            self.items[slot], self.lengths[slot] = self.items[last], self.lengths[last]
        self.items.pop()
        self.lengths.pop()
        if not self.items:
            self.keys, self.values = [], []
            self.start = self.end = 0
        else:
            self.start = self.end - max(self.lengths)  # drop columns that are padding in every row
        return item

    def row_kv(self, slot: int) -> KV:
        """An owned copy of one row's cached states (for the prefix cache)."""
        n = self.lengths[slot]
        return [
            (k[slot : slot + 1, :, self.end - n : self.end].clone(), v[slot : slot + 1, :, self.end - n : self.end].clone())
            for k, v in zip(self.keys, self.values)
        ]

    def step_inputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Attention mask ``[rows, width + 1]`` and position ids ``[rows, 1]`` for the next token."""
        if self.end >= self.capacity:
            self._relayout(self.width)
        lengths = torch.tensor(self.lengths, device=self.device)
        columns = torch.arange(self.width + 1, device=self.device)
        mask = (columns[None, :] >= (self.width - lengths)[:, None]).long()
        return mask, lengths[:, None].clone()

    def advance(self) -> None:
        """Record that the last forward pass wrote one token per row."""
        self.end += 1
        self.lengths = [n + 1 for n in self.lengths]

    def _allocate(self, kv: KV, width: int) -> None:
        self.device = kv[0][0].device
        capacity = width + max(self.min_growth, width // 2)
        self.keys = [k.new_zeros(self.max_rows, k.shape[1], capacity, k.shape[3]) for k, _ in kv]
        self.values = [v.new_zeros(self.max_rows, v.shape[1], capacity, v.shape[3]) for _, v in kv]
        self.start, self.end = 0, width

    def _relayout(self, width: int) -> None:
        """Copy live rows into a fresh buffer ``width`` wide with room to grow on the right."""
        old_keys, old_values, old_start, old_end = self.keys, self.values, self.start, self.end
        rows, old_width = len(self.items), self.width
        capacity = width + max(self.min_growth, width // 2)
        self.keys = [k.new_zeros(self.max_rows, k.shape[1], capacity, k.shape[3]) for k in old_keys]
        self.values = [v.new_zeros(self.max_rows, v.shape[1], capacity, v.shape[3]) for v in old_values]
        self.end = width
        self.start = width - old_width
        for new, old in zip(self.keys + self.values, old_keys + old_values):
            new[:rows, :, self.start : self.end] = old[:rows, :, old_start:old_end]
