"""Embedders: the real MiniLM model and the hashing TF-IDF, checked by the properties retrieval relies on."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from compound.curation.retrieval.embedders import Embedder, MiniLMEmbedder, TfidfEmbedder, make_embedder, minilm_model_dir
from compound.curation.errors import CurationError


def cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b)


@pytest.mark.slow
def test_minilm_ranks_paraphrase_above_unrelated_text(minilm: MiniLMEmbedder) -> None:
    cat, kitten, stocks = minilm.embed(["a cat sits on the mat", "a kitten is sitting on a rug", "stock prices fell sharply"])
    assert cos(cat, kitten) > cos(cat, stocks) + 0.3
    assert minilm.dim == 384 and isinstance(minilm, Embedder)


@pytest.mark.slow
def test_minilm_rows_are_unit_float32_and_independent_of_batch_and_cache(minilm: MiniLMEmbedder) -> None:
    texts = ["open the fridge", "a much longer sentence about putting a clean mug into the coffee machine", ""]
    together = minilm.embed(texts)
    assert together.dtype == np.float32 and together.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    fresh = MiniLMEmbedder(cache_size=0)  # no cache: each text alone, no padding
    for text, row in zip(texts, together):
        np.testing.assert_allclose(fresh.embed([text])[0], row, atol=1e-5)
    hits = minilm.hits
    np.testing.assert_array_equal(minilm.embed(texts[::-1]), together[::-1])
    assert minilm.hits == hits + 3


@pytest.mark.slow
def test_minilm_matches_sentence_transformers_reference(minilm: MiniLMEmbedder) -> None:
    st = pytest.importorskip("sentence_transformers")
    reference = st.SentenceTransformer(str(minilm_model_dir()), device="cpu")
    texts = ["go to the countertop and take the apple", "SELECT name FROM users WHERE age > 30"]
    expected = reference.encode(texts, normalize_embeddings=True)
    np.testing.assert_allclose(MiniLMEmbedder(cache_size=0).embed(texts), expected, atol=1e-4)


@pytest.mark.slow
def test_minilm_pickles_as_constructor_arguments(minilm: MiniLMEmbedder) -> None:
    payload = pickle.dumps(minilm)
    assert len(payload) < 10_000  # no weights inside
    clone = pickle.loads(payload)
    np.testing.assert_allclose(clone.embed(["hello world"]), minilm.embed(["hello world"]), atol=1e-6)


def test_tfidf_embeds_new_queries_in_the_stored_space(tfidf: TfidfEmbedder) -> None:
    stored = tfidf.embed(["put a clean mug in the coffee machine", "heat the potato in the microwave"])
    other_instance = TfidfEmbedder()
    query = other_instance.embed(["clean the mug"])[0]
    np.testing.assert_array_equal(other_instance.embed(["put a clean mug in the coffee machine"])[0], stored[0])
    assert cos(stored[0], query) > 0.3 > cos(stored[1], query)
    np.testing.assert_allclose(np.linalg.norm(stored, axis=1), 1.0, atol=1e-5)


def test_tfidf_gives_zero_rows_for_texts_without_words_and_handles_no_texts(tfidf: TfidfEmbedder) -> None:
    rows = tfidf.embed(["", "the of and"])
    assert rows.shape == (2, 1024) and not rows.any()
    assert tfidf.embed([]).shape == (0, 1024)


def test_tfidf_name_tells_apart_vector_spaces() -> None:
    assert TfidfEmbedder().name == "tfidf"
    assert TfidfEmbedder(256).name != "tfidf" and TfidfEmbedder(256).dim == 256
    clone = pickle.loads(pickle.dumps(TfidfEmbedder(256, ngram_max=1)))
    assert (clone.name, clone.dim, clone.ngram_max) == (TfidfEmbedder(256, ngram_max=1).name, 256, 1)


def test_make_embedder_names_the_choices_for_an_unknown_name() -> None:
    assert make_embedder("tfidf").name == "tfidf"
    with pytest.raises(CurationError, match="minilm, tfidf"):
        make_embedder("bert")
    with pytest.raises(CurationError, match="dim >= 16"):
        TfidfEmbedder(dim=4)
