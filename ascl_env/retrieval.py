"""BM25 retrieval over a :class:`~ascl_env.rules.RuleBase`.

Two backends share one tokenizer (:func:`tokenize`) and one ranking contract:

* ``"bm25s"`` (default): the index is built once by ``bm25s`` (Lucene BM25). A query is mapped to
  token ids of the index vocabulary and scored against bm25s's precomputed score matrix. When the
  optional C kernel ``ascl_env._bm25_kernel`` was built (:data:`KERNEL_AVAILABLE`; see the
  ``accelerate`` argument), one call adds the query terms' postings in query order and selects the
  top k, with scores bit-identical to ``BM25.get_scores_from_ids``. Otherwise numpy scores it —
  with ``BM25.get_scores_from_ids``, or, when the matrix is small (up to 4M cells, e.g. the bundled
  rule base), by summing rows of a dense copy of it, which gives bit-identical scores without a
  per-token Python loop. For ``k <= 16`` the top k are picked by k ``argmax`` passes, otherwise by
  a partition and a stable sort; there is no per-call ``retrieve()`` overhead.
  An ASCII query is split into words by one ``bytes.translate`` and ``split`` (the same words as
  the tokenizer's regex), and each retriever remembers the term each distinct word gives (up to
  65,536 words), so a word seen before skips the regex, stopword and stemming steps. Words are
  remembered, never a query's scores or results; non-ASCII queries go through :func:`tokenize`.
  ``search_batch`` on a dense matrix scores a chunk of queries at once, with the same additions
  in the same order, so its results equal ``search``'s exactly.
* ``"rank_bm25"``: ``rank_bm25.BM25Okapi``, the library named in the design card. It scores every
  rule in pure Python, so its cost grows with the rule base: about 50x slower than bm25s (20x
  than its numpy path) on the bundled rules, over 500x on 10,000 rules
  (``benchmarks/retrieval_speed.py``).

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

The index is built once in ``__init__`` and never mutated afterwards; searches only read it (and
add words to the word map with single, atomic dict writes), so one retriever can serve many
threads. :func:`shared_retriever` memoises one retriever per
(path, backend) per process.
"""

from __future__ import annotations

import math
import os
import re
import threading
from collections.abc import Sequence
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

try:  # the optional C accelerator (setup.py builds it when a C compiler is available)
    from ascl_env import _bm25_kernel
except ImportError:
    _bm25_kernel = None

__all__ = [
    "BM25Retriever",
    "Backend",
    "Hit",
    "KERNEL_AVAILABLE",
    "STEMMING_AVAILABLE",
    "shared_retriever",
    "tokenize",
]

Backend = Literal["bm25s", "rank_bm25"]
STEMMING_AVAILABLE = Stemmer is not None
# Whether the C scoring kernel (ascl_env._bm25_kernel) was built with the package.
KERNEL_AVAILABLE = _bm25_kernel is not None

_TOKEN = re.compile(r"\w\w+")  # the default token pattern of bm25s and scikit-learn
_STOPWORDS = frozenset(STOPWORDS_EN)
# Below this many matching rules, sorting them all is cheaper than partitioning first.
_SORT_ALL_BELOW = 512
# Up to this k, k argmax passes over the scores beat partitioning and sorting (bm25s backend;
# measured crossover about k = 20 on 112 rules, 40 on 10,000).
_ARGMAX_MAX_K = 16
# Distinct words whose term a bm25s retriever remembers, and their longest length in characters
# (together they bound the word map's memory to a few MiB).
_WORD_CACHE_MAX = 1 << 16
_WORD_CACHE_MAX_CHARS = 64
# Queries scored together by search_batch (bounds its score matrix to chunk x rules floats).
_BATCH_CHUNK = 1024
# Score matrices up to this many cells (16 MiB of float32) are kept dense for fast lookups.
_DENSE_MAX_CELLS = 4 * 1024 * 1024
# A PyStemmer object "has internal state, so must not be called concurrently" (its docstring):
# each thread gets its own.
_stemmers = threading.local()
# For ASCII text: a bytes.translate table that lowercases the characters _TOKEN's \w matches and
# turns every other byte into a space, so ``split()`` yields exactly the \w runs findall scans.
_ASCII_WORDS = bytes(
    ord(chr(c).lower()) if c < 128 and re.fullmatch(r"\w", chr(c)) else 32 for c in range(256)
)
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


def _hit(rule: Rule, score: float) -> Hit:
    """``Hit(rule, score)``, built without the frozen ``__init__``'s two ``object.__setattr__``
    calls: it takes half the time, a noticeable share of a bm25s search (equality tested)."""
    hit = object.__new__(Hit)
    fields = hit.__dict__
    fields["rule"] = rule
    fields["score"] = score
    return hit


class BM25Retriever:
    """Top-k BM25 search over a rule base (each rule is indexed as its title plus its text).

    Args:
        rule_base: the rules to index.
        backend: ``"bm25s"`` (fast, default) or ``"rank_bm25"``.
        k1, b: BM25 term-frequency saturation (finite, >= 0) and length normalisation (0 to 1).
        stem: stem tokens when PyStemmer is installed (see :attr:`stemmed`).
        max_query_chars: longer queries are truncated to this many characters.
        accelerate: bm25s backend only. ``None`` (default) scores with the C kernel when it was
            built (:data:`KERNEL_AVAILABLE`), else with numpy; ``True`` requires the kernel
            (``RuntimeError`` if it was not built); ``False`` always uses numpy. Both paths give
            the same hits with bit-identical scores (see :attr:`accelerated`).
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
        accelerate: bool | None = None,
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
        if accelerate not in (None, True, False):
            raise TypeError(f"accelerate must be None, True or False, got {accelerate!r}")
        if accelerate and backend != "bm25s":
            raise ValueError("accelerate=True needs backend='bm25s'")
        if accelerate and _bm25_kernel is None:
            raise RuntimeError(
                "accelerate=True but the C kernel ascl_env._bm25_kernel was not built (it needs a C"
                " compiler when the package is installed); use accelerate=None or False"
            )
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
            self._word_terms = _WordTerms(self._vocab, self.stemmed)
            self._kernel = None
            self._dense = None
            if accelerate is not False and _bm25_kernel is not None:
                index = self._bm25s.scores
                self._kernel = _bm25_kernel.Index(
                    np.ascontiguousarray(index["indptr"], dtype=np.int64),
                    np.ascontiguousarray(index["indices"], dtype=np.int32),
                    np.ascontiguousarray(index["data"], dtype=np.float32),
                    index["num_docs"],
                )
            else:
                # Row 0 is zeros, row n is term n - 1: indexed by term numbers (_term_numbers)
                self._dense = _dense_scores(self._bm25s.scores)
        else:
            self._okapi = BM25Okapi(corpus, k1=k1, b=b)
            # rank_bm25 can give a matching term an IDF <= 0, so matches are found by postings
            postings: dict[str, list[int]] = {}
            for index, doc in enumerate(corpus):
                for token in dict.fromkeys(doc):
                    postings.setdefault(token, []).append(index)
            self._postings = {t: np.array(docs) for t, docs in postings.items()}

    @property
    def accelerated(self) -> bool:
        """Whether searches use the C kernel (bm25s backend, see ``accelerate``)."""
        return self.backend == "bm25s" and self._kernel is not None

    def __len__(self) -> int:
        return len(self._rules)

    def __repr__(self) -> str:
        return f"BM25Retriever({len(self._rules)} rules, backend={self.backend!r})"

    def search(self, query: str, k: int = 3) -> list[Hit]:
        """The ``k`` best-matching rules for ``query``, best first (see the module docstring)."""
        _check_k(k)
        _check_query(query, "query")
        if self.backend == "bm25s":
            return self._search_bm25s(query, k)
        return self._search_rank_bm25(query, k)

    def search_batch(self, queries: Sequence[str], k: int = 3) -> list[list[Hit]]:
        """``search`` for each query; the result for each equals ``search(query, k)``."""
        _check_k(k)
        if isinstance(queries, str | bytes):
            raise TypeError("queries must be a sequence of str, not a single string")
        checked = [_check_query(q, f"queries[{i}]") for i, q in enumerate(queries)]
        if self.backend == "rank_bm25":
            return [self._search_rank_bm25(q, k) for q in checked]
        if self._dense is None:
            return [self._search_bm25s(q, k) for q in checked]
        return [
            hits
            for start in range(0, len(checked), _BATCH_CHUNK)
            for hits in self._search_dense_chunk(checked[start : start + _BATCH_CHUNK], k)
        ]

    def _search_dense_chunk(self, queries: list[str], k: int) -> list[list[Hit]]:
        dense = self._dense
        numbers = [self._term_numbers(q) for q in queries]
        scores = np.zeros((len(queries), len(self._rules)), dtype=dense.dtype)
        # Add the rows of the i-th query term of every query at once: each query's sum is built
        # in its own term order, exactly as in ``_search_bm25s``.
        for position in range(max(map(len, numbers), default=0)):
            rows = [q for q, row in enumerate(numbers) if len(row) > position]
            scores[rows] += dense[[numbers[q][position] for q in rows]]
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        top_scores = np.take_along_axis(scores, top, axis=1)
        rules = self._rules
        return [
            [_hit(rules[i], s) for i, s in zip(row, row_scores, strict=True) if s > 0]
            for row, row_scores in zip(top.tolist(), top_scores.tolist(), strict=True)
        ]

    def _search_rank_bm25(self, query: str, k: int) -> list[Hit]:
        tokens = tokenize(query[: self.max_query_chars], stem=self.stemmed)
        postings = [self._postings[t] for t in tokens if t in self._postings]
        if not postings:
            return []
        scores = self._okapi.get_scores(tokens)
        matches = np.unique(np.concatenate(postings))
        rules = self._rules
        return [_hit(rules[i], float(scores[i])) for i in _top_k(scores, matches, k)]

    def _search_bm25s(self, query: str, k: int) -> list[Hit]:
        kernel = self._kernel
        if kernel is not None:
            rules = self._rules
            return [_hit(rules[i], s) for i, s in kernel.top_k(self._term_numbers(query), k)]
        numbers = self._term_numbers(query)
        if not numbers:
            return []
        if self._dense is not None:
            scores = self._dense_sum(numbers)
        else:
            # get_scores_from_ids only reads the index and allocates its output: re-entrant.
            scores = self._bm25s.get_scores_from_ids([n - 1 for n in numbers])
        rules = self._rules
        # Lucene IDF is always positive, so a rule matches exactly when its score is > 0.
        if k > _ARGMAX_MAX_K:
            return [
                _hit(rules[i], float(scores[i]))
                for i in _top_k(scores, np.flatnonzero(scores > 0), k)
            ]
        hits = []
        for _ in range(min(k, len(rules))):
            best = scores.argmax()  # the first of equal maxima, so ties keep rule order
            score = scores.item(best)
            if score <= 0:
                break
            hits.append(_hit(rules[best], score))
            scores[best] = 0  # no longer a match (scores is this call's own array)
        return hits

    def _dense_sum(self, numbers: list[int]) -> np.ndarray:
        """Every rule's score: the dense matrix's rows ``numbers`` added in order.

        These are the float32 additions of ``get_scores_from_ids``, in the same order, so the
        scores are bit-identical to it (see the tests), without its per-term Python loop.
        """
        return np.add.reduce(self._dense.take(numbers, axis=0), axis=0)

    def _term_numbers(self, query: str) -> list[int]:
        """1 + the vocabulary id of each index term of ``query``, in query order (bm25s backend).

        Equal to ``[vocab[t] + 1 for t in tokenize(query) if t in vocab]`` (tested). For ASCII
        text, one translate-and-split yields the words the tokenizer's regex finds, and each
        distinct word is tokenized only once per retriever (see :class:`_WordTerms`).
        """
        query = query[: self.max_query_chars]
        if not query.isascii():
            vocab = self._vocab
            return [vocab[t] + 1 for t in tokenize(query, stem=self.stemmed) if t in vocab]
        words = query.encode().translate(_ASCII_WORDS).split()
        # filter drops the words that yield no index term (number 0)
        return list(filter(None, map(self._word_terms.__getitem__, words)))


class _WordTerms(dict[bytes, int]):
    """ASCII word (lowercase bytes) -> 1 + the vocabulary id of its :func:`tokenize` term, or 0.

    A missing word is tokenized on first lookup and remembered while fewer than
    ``_WORD_CACHE_MAX`` words are, unless it is longer than ``_WORD_CACHE_MAX_CHARS``. Only single
    dict reads and writes happen, which are atomic, so threads share one instance without a lock.
    This remembers words, never query results.
    """

    def __init__(self, vocab: dict[str, int], stem: bool) -> None:
        super().__init__()
        self._vocab = vocab
        self._stem = stem

    def __missing__(self, word: bytes) -> int:
        terms = tokenize(word.decode(), stem=self._stem)  # one \w run: at most one term
        number = self._vocab[terms[0]] + 1 if terms and terms[0] in self._vocab else 0
        if len(self) < _WORD_CACHE_MAX and len(word) <= _WORD_CACHE_MAX_CHARS:
            self[word] = number
        return number


def _top_k(scores: np.ndarray, candidates: np.ndarray, k: int) -> np.ndarray:
    """The k best of ``candidates`` (ascending rule indices): score descending, then index."""
    if candidates.size > max(k, _SORT_ALL_BELOW):
        candidate_scores = scores[candidates]
        kth = np.partition(candidate_scores, -k)[-k]
        # keep every candidate tied with the k-th score so the index tie-break below stays exact
        candidates = candidates[candidate_scores >= kth]
    # a stable sort keeps ascending index order among equal scores
    order = np.argsort(-scores[candidates], kind="stable")
    return candidates[order[:k]]


def _dense_scores(index: dict) -> np.ndarray | None:
    """The bm25s score matrix as a dense array, if small enough: row 0 zeros, row t + 1 term t."""
    indptr, num_docs = index["indptr"], index["num_docs"]
    vocab_size = len(indptr) - 1
    # With one rule, numpy would sum a column of length-1 rows pairwise rather than in order,
    # which is not bit-identical to bm25s.
    if num_docs < 2 or vocab_size * num_docs > _DENSE_MAX_CELLS:
        return None
    dense = np.zeros((vocab_size + 1, num_docs), dtype=index["data"].dtype)
    rows = np.repeat(np.arange(1, vocab_size + 1), np.diff(indptr))
    dense[rows, index["indices"]] = index["data"]
    dense.setflags(write=False)
    return dense


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, _INT_TYPES):
        raise TypeError(f"k must be an int, got {type(k).__name__}")
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")


def _check_query(query: object, name: str) -> str:
    if not isinstance(query, str):
        raise TypeError(f"{name} must be a str, got {type(query).__name__}")
    return query


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
