"""Text: tokenizers, a vocabulary, beam search, BLEU, and word vectors (``fastdl.text``)."""
from __future__ import annotations

from .beam import beam_search
from .bleu import bleu, sentence_bleu
from .corpus import LineCorpus, python_docs_corpus
from .glove import GloVe
from .keyedvectors import KeyedVectors, cosine_similarity
from .sampling import AliasTable
from .vocab import Vocab, char_tokenize, word_tokenize
from .word2vec import Word2Vec

__all__ = ["beam_search", "bleu", "sentence_bleu", "Vocab", "char_tokenize", "word_tokenize", "LineCorpus",
           "python_docs_corpus", "AliasTable", "KeyedVectors", "cosine_similarity", "Word2Vec", "GloVe"]
