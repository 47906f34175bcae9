"""BM25 retrieval over a :class:`~ascl_env.rules.RuleBase`.

Two backends share one tokenizer (:func:`tokenize`) and one ranking contract:

* ``"bm25s"`` (default): ``bm25s`` (Lucene BM25) builds the index once; a query's terms are mapped
  to the index's token ids and scored with ``BM25.get_scores_from_ids`` (numpy), then the top k
  are picked by a stable sort. A search over the bundled 112 rules takes microseconds
  (``benchmarks/retrieval_speed.py``), next to LLM turns of seconds.
* ``"rank_bm25"``: ``rank_bm25.BM25Okapi``, the library named in the design card. It scores every
  rule in pure Python, so it is slower and its cost grows with the rule base.

Both return BM25 scores, but the numbers differ between backends because the IDF variants differ
(bm25s uses Lucene's ``log(1 + (N - df + 0.5) / (df + 0.5))``; rank_bm25 uses
``log((N - df + 0.5) / (df + 0.5))`` floored at ``epsilon * mean idf``). Compare scores only
within one backend. bm25s scores of returned rules are always positive; rank_bm25 scores can be
zero or negative for terms that occur in more than half of the rules (its floor is itself
negative when such terms dominate), and those rules still count as matches.

Query contract (both backends):

* best first; ties broken by rule-base order, so results are deterministic;
* only rules sharing at least one (stemmed, non-stopword) term with the query are returned, so a
  query may yield fewer than ``k`` hits; an empty, whitespace-only or all-stopword query, or one
  whose terms occur in no rule, yields ``[]``;
* ``k`` larger than the rule base is allowed (every matching rule is returned); ``k <= 0`` raises
  ``ValueError``; a non-``str`` query raises ``TypeError``;
* queries longer than ``max_query_chars`` characters are truncated to that length before
  tokenization (so enormous inputs cost bounded time and never crash).

The index is built once in ``__init__`` and never mutated afterwards; searches only read it, so
one retriever can serve many threads. :func:`shared_retriever` memoises one retriever per
(path, backend) per process.
"""

from __future__ import annotations

import math
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import bm25s
import numpy as np
from bm25s.stopwords import STOPWORDS_EN
from rank_bm25 import BM25Okapi

from ascl_env.rules import Rule, RuleBase

try:
    import Stemmer  # PyStemmer
except ImportError:  # stemming is optional: without PyStemmer, tokens are left unstemmed
    Stemmer = None

__all__ = [
    "BM25Retriever",
    "Backend",
    "Hit",
    "STEMMING_AVAILABLE",
    "shared_retriever",
    "tokenize",
]

Backend = Literal["bm25s", "rank_bm25"]
STEMMING_AVAILABLE = Stemmer is not None

_TOKEN = re.compile(r"\w\w+")  # the default token pattern of bm25s and scikit-learn
_STOPWORDS = frozenset(STOPWORDS_EN)
# A PyStemmer object "has internal state, so must not be called concurrently" (its docstring):
# each thread gets its own.
_stemmers = threading.local()
_INT_TYPES = (int, np.integer)


def _stemmer():
    stemmer = getattr(_stemmers, "english", None)
    if stemmer is None:
        stemmer = _stemmers.english = Stemmer.Stemmer("english")
    return stemmer


def tokenize(text: str, *, stem: bool = True) -> list[str]:
    """Lowercase, split into word tokens of 2+ characters, drop English stopwords, stem.

    Stemming (Snowball English) happens only when ``stem`` is true and PyStemmer is installed.
    This one function tokenizes rules and queries for both backends.
    """
    tokens = [t for t in _TOKEN.findall(text.lower()) if t not in _STOPWORDS]
    if stem and STEMMING_AVAILABLE:
        return _stemmer().stemWords(tokens)
    return tokens


@dataclass(frozen=True)
class Hit:
    """A retrieved rule and its BM25 score (higher is better; comparable within one backend)."""

    rule: Rule
    score: float


class BM25Retriever:
    """Top-k BM25 search over a rule base (each rule is indexed as its title plus its text).

    Args:
        rule_base: the rules to index.
        backend: ``"bm25s"`` (fast, default) or ``"rank_bm25"``.
        k1, b: BM25 term-frequency saturation (finite, >= 0) and length normalisation (0 to 1).
        stem: stem tokens when PyStemmer is installed (see :attr:`stemmed`).
        max_query_chars: longer queries are truncated to this many characters.
    """

    def __init__(
        self,
        rule_base: RuleBase,
        backend: Backend = "bm25s",
        *,
        k1: float = 1.5,
        b: float = 0.75,
        stem: bool = True,
        max_query_chars: int = 4096,
    ) -> None:
        if not isinstance(rule_base, RuleBase):
            raise TypeError(f"rule_base must be a RuleBase, got {type(rule_base).__name__}")
        if backend not in get_args(Backend):
            raise ValueError(f"unknown backend {backend!r}; use 'bm25s' or 'rank_bm25'")
        if isinstance(max_query_chars, bool) or not isinstance(max_query_chars, int):
            raise TypeError("max_query_chars must be an int")
        if max_query_chars <= 0:
            raise ValueError(f"max_query_chars must be positive, got {max_query_chars}")
        for name, value, high in (("k1", k1, math.inf), ("b", b, 1.0)):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"{name} must be a number, got {type(value).__name__}")
            if not 0 <= value <= high or not math.isfinite(value):
                bounds = "finite and >= 0" if high == math.inf else "in [0, 1]"
                raise ValueError(f"{name} must be {bounds}, got {value}")
        self.rule_base = rule_base
        self.backend: Backend = backend
        self.max_query_chars = max_query_chars
        self.stemmed = stem and STEMMING_AVAILABLE
        self._rules = rule_base.rules
        corpus = [tokenize(f"{rule.title}\n{rule.text}", stem=self.stemmed) for rule in self._rules]
        if backend == "bm25s":
            terms = dict.fromkeys(t for doc in corpus for t in doc)
            self._vocab = {term: i for i, term in enumerate(terms)}
            ids = [[self._vocab[t] for t in doc] for doc in corpus]
            self._bm25s = bm25s.BM25(k1=k1, b=b, method="lucene")
            self._bm25s.index((ids, self._vocab), create_empty_token=False, show_progress=False)
        else:
            self._okapi = BM25Okapi(corpus, k1=k1, b=b)
            # rank_bm25 can give a matching term an IDF <= 0, so matches are found by postings
            postings: dict[str, list[int]] = {}
            for index, doc in enumerate(corpus):
                for token in dict.fromkeys(doc):
                    postings.setdefault(token, []).append(index)
            self._postings = {t: np.array(docs) for t, docs in postings.items()}

    def __len__(self) -> int:
        return len(self._rules)

    def __repr__(self) -> str:
        return f"BM25Retriever({len(self._rules)} rules, backend={self.backend!r})"

    def search(self, query: str, k: int = 3) -> list[Hit]:
        """The ``k`` best-matching rules for ``query``, best first (see the module docstring)."""
        if isinstance(k, bool) or not isinstance(k, _INT_TYPES):
            raise TypeError(f"k must be an int, got {type(k).__name__}")
        if k <= 0:
            raise ValueError(f"k must be positive, got {k}")
        if not isinstance(query, str):
            raise TypeError(f"query must be a str, got {type(query).__name__}")
        tokens = tokenize(query[: self.max_query_chars], stem=self.stemmed)
        if self.backend == "bm25s":
            ids = [self._vocab[t] for t in tokens if t in self._vocab]
            if not ids:
                return []
            # get_scores_from_ids only reads the index and allocates its output: re-entrant.
            scores = self._bm25s.get_scores_from_ids(ids)
            # Lucene IDF is always positive, so a rule matches exactly when its score is > 0.
            matches = np.flatnonzero(scores > 0)
        else:
            postings = [self._postings[t] for t in tokens if t in self._postings]
            if not postings:
                return []
            scores = self._okapi.get_scores(tokens)
            matches = np.unique(np.concatenate(postings))
        # a stable sort of the (ascending) matches keeps rule order among equal scores
        best = matches[np.argsort(-scores[matches], kind="stable")[:k]]
        return [Hit(self._rules[i], float(scores[i])) for i in best]


_shared: dict[tuple[str | None, str], BM25Retriever] = {}
_shared_lock = threading.Lock()


def shared_retriever(
    path: str | os.PathLike[str] | None = None, backend: Backend = "bm25s"
) -> BM25Retriever:
    """One retriever per (rule-base path, backend) per process, built on first use (thread-safe).

    ``path=None`` is the bundled rule base. The file is read once: later edits to it are not seen
    by this process.
    """
    key = (None if path is None else str(Path(path).resolve()), backend)
    with _shared_lock:
        retriever = _shared.get(key)
        if retriever is None:
            retriever = _shared[key] = BM25Retriever(RuleBase.load(path), backend)
        return retriever
