"""The decode batch: right-aligned rows, masks, positions, join/leave and growth.

Uses small fake KV tensors whose values encode (row, position), and writes
"new tokens" through the packed pass's decode segment exactly as a model
forward would.
"""

import torch

from compound.llm.hf.decode_batch import DecodeBatch
from compound.llm.hf.packed import decode_rows

LAYERS, HEADS, DIM = 2, 1, 2


def fake_kv(tag, n):
    """One row of n positions; keys hold tag*1000 + position, values the negation."""
    pos = torch.arange(n, dtype=torch.float32)
    k = (tag * 1000 + pos).view(1, 1, n, 1).expand(1, HEADS, n, DIM).clone()
    return [(k.clone(), -k.clone()) for _ in range(LAYERS)]


def write_step(batch, tags):
    """Simulate a forward: every layer appends one token per row, then advance."""
    mask, positions = batch.step_inputs()
    segment = decode_rows(0, batch, mask)
    for layer in range(LAYERS):
        new = torch.tensor([t * 1000 + p for t, p in zip(tags, positions.flatten().tolist())], dtype=torch.float32)
        k = new.view(1, 1, -1, 1).expand(1, HEADS, -1, DIM).clone()  # packed: [1, heads, rows, dim]
        segment.write(layer, k, -k)
        keys = batch.keys[layer][: len(batch), :, batch.start : batch.end + 1]  # what the segment attends over
        assert keys.shape[2] == mask.shape[1]  # the mask covers exactly what attention sees
        assert bool(keys.isfinite().all())  # masked-out columns hold finite numbers (zeros, or a departed row's)
    batch.advance()
    return mask, positions


def row_values(batch, slot):
    return batch.row_kv(slot)[0][0][0, 0, :, 0].tolist()


def test_rows_of_different_lengths_get_masks_and_positions():
    batch = DecodeBatch(max_rows=3)
    batch.add("a", fake_kv(1, 5))
    batch.add("b", fake_kv(2, 2))
    mask, positions = write_step(batch, [1, 2])
    assert positions.flatten().tolist() == [5, 2]
    assert mask.tolist() == [[1] * 6, [0, 0, 0, 1, 1, 1]]
    assert row_values(batch, 0) == [1000 + p for p in range(6)]
    assert row_values(batch, 1) == [2000 + p for p in range(3)]


def test_a_longer_row_can_join_mid_decode_and_rows_can_leave():
    batch = DecodeBatch(max_rows=3, min_growth=2)
    batch.add("a", fake_kv(1, 3))
    write_step(batch, [1])
    batch.add("b", fake_kv(2, 9))  # longer than the batch: widens to the left
    batch.add("c", fake_kv(3, 1))
    for _ in range(7):  # forces the buffer to grow on the right several times
        write_step(batch, [1, 2, 3])
    assert batch.lengths == [11, 16, 8]
    assert row_values(batch, 0) == [1000 + p for p in range(11)]
    assert row_values(batch, 1) == [2000 + p for p in range(16)]
    assert row_values(batch, 2) == [3000 + p for p in range(8)]
    assert batch.remove(1) == "b"  # the longest row leaves; "c" moves into its slot
    assert batch.items == ["a", "c"] and batch.width == 11
    write_step(batch, [1, 3])
    assert row_values(batch, 0) == [1000 + p for p in range(12)]
    assert row_values(batch, 1) == [3000 + p for p in range(9)]
    batch.remove(0)
    batch.remove(0)
    assert len(batch) == 0 and batch.keys == []
