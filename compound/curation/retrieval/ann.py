"""An approximate nearest-neighbour index for large stores (faiss IVF, int8 codes, inner product).

Why IVF and not HNSW: on a 2-core machine HNSW takes ~50 s per 100,000
768-d rows to build (~9 min for a million) and every row is inserted into a
graph; IVF trains a coarse k-means once (tens of seconds) and then
``add`` is an assignment to the nearest list (~3 s per 100,000 rows), so a
worker extends it with each delta chunk at O(delta). Its recall depends on
``nprobe`` (lists scanned per query); the retriever asks it for more
candidates than it shows and ranks those exactly, so the codes can be
8-bit (a quarter of float32) without the ranking seeing the quantisation.

faiss is imported on first use, not with ``compound``: small stores (every
CPU test, most runs) never pay for it. It runs its queries on one OpenMP
thread (``THREADS``): a query is one vector, and a worker process shares
its node with many others (Ray workers, engines), so more threads would only
contend. Nothing here imports Ray.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

THREADS = 1  # OpenMP threads faiss uses in this process (see the module doc)
_faiss: Any = None


def faiss_module() -> Any:
    """faiss, imported once, with its thread count set to ``THREADS``."""
    global _faiss
    if _faiss is None:
        import faiss

        faiss.omp_set_num_threads(THREADS)
        _faiss = faiss
    return _faiss


def list_count(rows: int) -> int:
    """IVF lists for an index trained on ``rows`` rows: ~4 sqrt(rows), a power of two, >= 39 training rows per list.

    faiss's k-means wants at least 39 points per centroid; 4 sqrt(n) keeps
    lists of ~sqrt(n)/4 rows at training time, so they are still short after
    the store grows tens of times past the threshold.
    """
    wanted = 2 ** round(math.log2(max(1.0, 4 * math.sqrt(rows))))
    return int(max(1, min(wanted, rows // 39, 65536)))


class IvfIndex:
    """Unit vectors (rows numbered in order of ``add``) searched by inner product.

    The first ``add`` trains the coarse quantiser (and the 8-bit codec's
    ranges) on the rows it is given, so it should hold a representative
    sample (the store at the moment it crosses the ANN threshold); later
    ``add`` calls only append. ``nprobe``: lists scanned per query.
    """

    def __init__(self, dim: int, *, nprobe: int = 16, seed: int = 0) -> None:
        self.dim, self.nprobe, self.seed = dim, nprobe, seed
        self._index: Any = None

    def __len__(self) -> int:
        return 0 if self._index is None else int(self._index.ntotal)

    @property
    def lists(self) -> int:
        return 0 if self._index is None else int(self._index.nlist)

    def add(self, rows: np.ndarray) -> None:
        """Append ``rows`` (n, dim); the first call trains on them."""
        faiss = faiss_module()
        rows = np.ascontiguousarray(rows, dtype=np.float32)
        if rows.shape[1:] != (self.dim,):
            raise ValueError(f"index of width {self.dim} got rows of shape {rows.shape}")
        if not len(rows):
            return
        if self._index is None:
            index = faiss.IndexIVFScalarQuantizer(
                faiss.IndexFlatIP(self.dim), self.dim, list_count(len(rows)),
                faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT,
            )
            index.cp.seed = self.seed  # the same rows train the same index
            index.train(rows)
            self._index = index
        self._index.nprobe = self.nprobe
        self._index.add(rows)

    def search(self, query: np.ndarray, k: int) -> np.ndarray:
        """Row numbers of (about) the ``k`` rows of largest inner product with ``query``, best first."""
        if self._index is None or k <= 0:
            return np.zeros(0, np.int64)
        self._index.nprobe = self.nprobe
        _, ids = self._index.search(np.asarray(query, np.float32).reshape(1, -1), k)
        found = ids[0]
        return found[found >= 0]

    def nbytes(self) -> int:
        """Memory of the codes, ids and centroids (what the index adds to a worker)."""
        if self._index is None:
            return 0
        return len(self) * (self.dim + 8) + self.lists * self.dim * 4
