"""Text: tokenizers, a vocabulary, beam search and BLEU (``fastdl.text``)."""
from __future__ import annotations

from .beam import beam_search
from .bleu import bleu, sentence_bleu
from .vocab import Vocab, char_tokenize, word_tokenize

__all__ = ["beam_search", "bleu", "sentence_bleu", "Vocab", "char_tokenize", "word_tokenize"]
