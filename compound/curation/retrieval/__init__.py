"""Choosing the examples an episode is shown: embedders, flex and episode retrieval, ranking, MMR, ANN.

``make_retriever`` builds a trial's retriever over an example set;
``make_embedder`` the text embedder (MiniLM, the paper's, or TF-IDF). Heavy
libraries (torch, transformers, faiss) load only when first needed.
"""

from compound.curation.retrieval.ann import IvfIndex, list_count
from compound.curation.retrieval.base import Example, NoExamples, Retriever
from compound.curation.retrieval.embedders import Embedder, MiniLMEmbedder, TfidfEmbedder, make_embedder, minilm_model_dir
from compound.curation.retrieval.mmr import mmr
from compound.curation.retrieval.ranking import check_k, similarities, top_k
from compound.curation.retrieval.retrievers import FlexRetriever, make_retriever

__all__ = [
    "Embedder", "Example", "FlexRetriever", "IvfIndex", "MiniLMEmbedder", "NoExamples", "Retriever", "TfidfEmbedder",
    "check_k", "list_count", "make_embedder", "make_retriever", "minilm_model_dir", "mmr", "similarities", "top_k",
]
