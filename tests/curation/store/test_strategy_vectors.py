"""strategy_vectors: block by block it is the same as at once, and float16 stores get float32 rows."""

from __future__ import annotations

import numpy as np

from compound.curation.store import vectors


def embeddings(dtype: type) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    counts = np.array([0, 2, 3, 0, 1, 4, 0, 2])  # trajectories without steps among them
    offsets = np.concatenate([[0], np.cumsum(counts)])
    return {"key": rng.standard_normal((8, 6)).astype(dtype), "plan": rng.standard_normal((8, 6)).astype(dtype),
            "observation": rng.standard_normal((offsets[-1], 6)).astype(dtype), "step_offsets": offsets}


def test_blocks_give_the_rows_of_one_pass(monkeypatch) -> None:
    whole = vectors.strategy_vectors(embeddings(np.float32))
    monkeypatch.setattr(vectors, "STRATEGY_BLOCK", 3)
    np.testing.assert_array_equal(vectors.strategy_vectors(embeddings(np.float32)), whole)
    emb = embeddings(np.float32)
    lo, hi = emb["step_offsets"][1], emb["step_offsets"][2]
    expected = emb["key"][1] + emb["plan"][1] + emb["observation"][lo:hi].mean(axis=0)
    np.testing.assert_allclose(whole[1], expected / np.linalg.norm(expected), rtol=1e-6)


def test_float16_stores_get_float32_unit_rows() -> None:
    half = vectors.strategy_vectors(embeddings(np.float16))
    assert half.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(half, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(half, vectors.strategy_vectors(embeddings(np.float32)), atol=2e-3)
