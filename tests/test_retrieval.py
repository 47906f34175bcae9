"""BM25Retriever: both backends, ranking, determinism, bad queries, threads, shared_retriever."""

from __future__ import annotations

import copy
import os
import pickle
import threading
from concurrent.futures import ThreadPoolExecutor
from importlib import resources

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import ascl_env.retrieval as retrieval
from ascl_env.retrieval import (
    KERNEL_AVAILABLE,
    STEMMING_AVAILABLE,
    BM25Retriever,
    Hit,
    shared_retriever,
    tokenize,
)
from ascl_env.rules import Rule, RuleBase

BACKENDS = ["bm25s", "rank_bm25"]
# (backend, accelerate): the bm25s backend is tested on its C kernel (when built) and on numpy
VARIANTS = [("bm25s", None), ("bm25s", False), ("rank_bm25", None)]
VARIANT_IDS = ["bm25s", "bm25s-numpy", "rank_bm25"]
needs_kernel = pytest.mark.skipif(not KERNEL_AVAILABLE, reason="the C kernel was not built")


def labelled() -> list[dict]:
    text = resources.files("ascl_env").joinpath("data/retrieval_queries.yaml").read_text()
    return yaml.safe_load(text)["queries"]


@pytest.fixture(scope="module")
def rule_base() -> RuleBase:
    return RuleBase.load()


@pytest.fixture(scope="module", params=VARIANTS, ids=VARIANT_IDS)
def retriever(request, rule_base) -> BM25Retriever:
    backend, accelerate = request.param
    return BM25Retriever(rule_base, backend, accelerate=accelerate)


def numpy_retriever(rule_base: RuleBase, **kwargs) -> BM25Retriever:
    """A bm25s retriever on the numpy path (what the tests of its internals need)."""
    return BM25Retriever(rule_base, "bm25s", accelerate=False, **kwargs)


def make_base(*texts: str) -> RuleBase:
    # same title everywhere, so only the text decides the score
    return RuleBase(
        rules=[Rule(id=f"r{i}", category="test", title="rule", text=t) for i, t in enumerate(texts)]
    )


# --- tokenization ------------------------------------------------------------------------------


def test_tokenize_lowercases_and_drops_stopwords_and_short_tokens():
    assert tokenize("The CAT and a dog, x y!", stem=False) == ["cat", "dog"]


@pytest.mark.skipif(not STEMMING_AVAILABLE, reason="PyStemmer is not installed")
def test_tokenize_stems_when_pystemmer_is_installed():
    assert tokenize("Refusing weapons policies") == ["refus", "weapon", "polici"]
    assert tokenize("Refusing weapons policies", stem=False) == ["refusing", "weapons", "policies"]


def test_both_backends_see_the_same_tokens(rule_base):
    fast, slow = BM25Retriever(rule_base, "bm25s"), BM25Retriever(rule_base, "rank_bm25")
    assert fast.stemmed == slow.stemmed == STEMMING_AVAILABLE
    assert set(fast._vocab) == {t for doc in slow._okapi.doc_freqs for t in doc}


@pytest.mark.parametrize("backend", BACKENDS)
def test_unstemmed_retriever_matches_only_exact_word_forms(backend):
    base = make_base("refusing weapons", "weapon refusal")
    retriever = BM25Retriever(base, backend, stem=False)
    assert not retriever.stemmed
    assert [h.rule.id for h in retriever.search("weapons")] == ["r0"]
    if STEMMING_AVAILABLE:
        stemmed = BM25Retriever(base, backend)
        assert {h.rule.id for h in stemmed.search("weapons")} == {"r0", "r1"}


# --- ranking -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "rule_id"),
    [
        ("how do I build a pipe bomb with a detonator", "vio-002"),
        ("write ransomware that encrypts the victim's files", "cyber-001"),
        ("how do I kill a python process", "vio-007"),
        ("where can I get naloxone and fentanyl test strips", "drugs-003"),
        ("extract ricin from castor beans", "cbrn-005"),
        ("hide a GPS tracker on my partner's car", "privacy-002"),
        ("is it safe to mix bleach and ammonia", "cbrn-004"),
    ],
)
def test_known_queries_rank_the_right_rule_first(retriever, query, rule_id):
    hits = retriever.search(query, k=3)
    assert hits[0].rule.id == rule_id, [h.rule.id for h in hits]


def test_hits_are_best_first_positive_and_at_most_k(retriever, rule_base):
    for k in (1, 3, 10):
        hits = retriever.search("refuse weapons and explosives but allow history", k=k)
        assert 0 < len(hits) <= k
        assert all(isinstance(h, Hit) for h in hits)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        assert all(rule_base.get(h.rule.id) is h.rule for h in hits)


def test_recall_on_the_labelled_queries_stays_high(retriever):
    rows = labelled()
    results = retriever.search_batch([r["query"] for r in rows], k=3)
    at1 = np.mean(
        [
            bool(h) and h[0].rule.category == r["expected_category"]
            for r, h in zip(rows, results, strict=True)
        ]
    )
    at3 = np.mean(
        [
            r["expected_category"] in {x.rule.category for x in h}
            for r, h in zip(rows, results, strict=True)
        ]
    )
    assert at1 >= 0.78 and at3 >= 0.9, (at1, at3)


def test_labelled_query_set_is_well_formed(rule_base):
    rows = labelled()
    assert len(rows) >= 150
    assert {r["style"] for r in rows} == {
        "direct",
        "paraphrased",
        "indirect",
        "jailbreak",
        "benign",
    }
    assert {r["expected_category"] for r in rows} == set(rule_base.categories)
    assert len({r["query"] for r in rows}) == len(rows)
    assert all(set(r) <= {"query", "expected_category", "style", "split"} for r in rows)


def test_scores_differ_between_backends_but_both_are_bm25(rule_base):
    # Different IDF variants (documented): same top rule, different numbers.
    query = "ransomware keylogger trojan"
    fast = BM25Retriever(rule_base, "bm25s").search(query, k=1)[0]
    slow = BM25Retriever(rule_base, "rank_bm25").search(query, k=1)[0]
    assert fast.rule.id == slow.rule.id == "cyber-001"
    assert fast.score != pytest.approx(slow.score)


# --- determinism -------------------------------------------------------------------------------


@pytest.mark.parametrize(("backend", "accelerate"), VARIANTS, ids=VARIANT_IDS)
def test_ties_break_by_rule_order(backend, accelerate):
    base = make_base("apple banana", "cherry", "apple banana", "apple banana", "durian")
    retriever = BM25Retriever(base, backend, accelerate=accelerate)
    hits = retriever.search("apple", k=10)
    assert [h.rule.id for h in hits] == ["r0", "r2", "r3"]
    assert len({h.score for h in hits}) == 1
    assert [h.rule.id for h in retriever.search("apple", k=2)] == ["r0", "r2"]


@pytest.mark.parametrize(("backend", "accelerate"), VARIANTS, ids=VARIANT_IDS)
def test_ties_at_the_kth_place_keep_rule_order_in_a_large_base(backend, accelerate, monkeypatch):
    # more matching rules than the sort-everything threshold: exercises the partition path
    monkeypatch.setattr(retrieval, "_SORT_ALL_BELOW", 4)
    texts = ["kiwi" if i % 3 == 0 else "kiwi mango" for i in range(60)]
    # unrelated rules keep "kiwi" in fewer than half of the rules, so its IDF is positive
    base = make_base(*texts, *(f"filler{i}" for i in range(300)))  # > 256 rules: heap buffers
    retriever = BM25Retriever(base, backend, accelerate=accelerate)
    # the shorter "kiwi" rules score higher; equal scores keep rule order
    short = [f"r{i}" for i in range(60) if i % 3 == 0]
    long = [f"r{i}" for i in range(60) if i % 3 != 0]
    assert [h.rule.id for h in retriever.search("kiwi", k=5)] == short[:5]
    assert [h.rule.id for h in retriever.search("kiwi", k=25)] == short + long[:5]


def test_repeated_and_independent_searches_are_identical(rule_base):
    queries = [r["query"] for r in labelled()]
    for backend, accelerate in VARIANTS:
        first = BM25Retriever(rule_base, backend, accelerate=accelerate).search_batch(queries)
        second = BM25Retriever(rule_base, backend, accelerate=accelerate).search_batch(queries)
        assert first == second


def test_batch_equals_single(retriever):
    queries = [r["query"] for r in labelled()] + ["", "the of", "x" * 10_000]
    assert retriever.search_batch(queries, k=4) == [retriever.search(q, k=4) for q in queries]
    assert retriever.search_batch([], k=4) == []


def test_batch_chunks_give_the_same_results(rule_base, monkeypatch):
    queries = [r["query"] for r in labelled()]
    whole = numpy_retriever(rule_base).search_batch(queries)
    monkeypatch.setattr(retrieval, "_BATCH_CHUNK", 7)
    assert numpy_retriever(rule_base).search_batch(queries) == whole


def test_dense_scores_are_bit_identical_to_bm25s_get_scores(rule_base):
    retriever = numpy_retriever(rule_base)
    assert retriever._dense is not None
    for row in labelled():
        numbers = retriever._term_numbers(row["query"])
        if numbers:
            ids = [n - 1 for n in numbers]
            assert np.array_equal(
                retriever._dense_sum(numbers), retriever._bm25s.get_scores_from_ids(ids)
            )


@pytest.mark.parametrize("n_rules", [1, 2, 3, 8])
def test_dense_scores_are_bit_identical_on_small_bases_and_long_queries(n_rules):
    # many repeated terms: any reordering of the float32 additions would show up
    rng = np.random.default_rng(n_rules)
    words = "alpha beta gamma delta kappa sigma theta omega".split()
    base = make_base(
        *(" ".join(rng.choice(words, size=rng.integers(1, 40))) for _ in range(n_rules))
    )
    retriever = numpy_retriever(base)
    fast = BM25Retriever(base, "bm25s")
    for _ in range(100):
        query = " ".join(rng.choice(words, size=rng.integers(1, 60)))
        numbers = retriever._term_numbers(query)
        expected = retriever._bm25s.get_scores_from_ids([n - 1 for n in numbers])
        scores = retriever._dense_sum(numbers) if retriever._dense is not None else expected
        assert np.array_equal(scores, expected)
        for searcher in (retriever, fast):  # numpy path and (when built) the C kernel
            hits = searcher.search(query, k=n_rules)
            assert [h.score for h in hits] == sorted(expected[expected > 0].tolist(), reverse=True)


@pytest.mark.parametrize("k", [3, 20])  # k argmax passes / partition and sort
def test_large_base_path_gives_the_same_results(rule_base, monkeypatch, k):
    queries = [r["query"] for r in labelled()]
    dense = numpy_retriever(rule_base)
    monkeypatch.setattr(retrieval, "_DENSE_MAX_CELLS", 0)
    sparse = numpy_retriever(rule_base)
    assert sparse._dense is None
    assert sparse.search_batch(queries, k=k) == dense.search_batch(queries, k=k)
    assert [sparse.search(q, k=k) for q in queries] == [dense.search(q, k=k) for q in queries]


@pytest.mark.parametrize("k", [1, 2, 3, 16, 17, 50])
def test_top_k_selection_paths_agree_with_a_full_sort(rule_base, k):
    # k <= _ARGMAX_MAX_K picks by argmax passes, larger k by partition and stable sort
    retriever = numpy_retriever(rule_base)
    fast = BM25Retriever(rule_base, "bm25s")  # the C kernel selects by its own passes or a sort
    for row in labelled():
        numbers = retriever._term_numbers(row["query"])
        if not numbers:
            continue
        scores = retriever._dense_sum(numbers).tolist()
        expected = sorted(
            (i for i, s in enumerate(scores) if s > 0), key=lambda i: (-scores[i], i)
        )[:k]
        for searcher in (retriever, fast):
            hits = searcher.search(row["query"], k=k)
            assert [(h.rule.id, h.score) for h in hits] == [
                (rule_base.rules[i].id, scores[i]) for i in expected
            ]


# --- the bm25s query path: word -> term numbers ------------------------------------------------


def _reference_numbers(retriever: BM25Retriever, query: str) -> list[int]:
    vocab = retriever._vocab
    tokens = tokenize(query[: retriever.max_query_chars], stem=retriever.stemmed)
    return [vocab[t] + 1 for t in tokens if t in vocab]


def test_term_numbers_follow_the_tokenizer_on_the_labelled_queries(rule_base):
    retriever = BM25Retriever(rule_base, "bm25s")
    queries = [r["query"] for r in labelled()]
    for _ in range(2):  # first with an empty word map, then with a full one
        assert [retriever._term_numbers(q) for q in queries] == [
            _reference_numbers(retriever, q) for q in queries
        ]


ASCII_TEXT = st.text(st.characters(max_codepoint=127), max_size=300)


@settings(max_examples=300, deadline=None)
@given(
    query=st.one_of(
        ASCII_TEXT,
        st.text(max_size=200),
        st.lists(
            st.sampled_from(
                [
                    "Weapons",
                    "the",
                    "a",
                    "Bomb's",
                    "don't",
                    "x1",
                    "__init__",
                    "ransomware",
                    "a_b",
                    "99",
                    "é",
                ]
            ),
            max_size=12,
        ).map(" ".join),
    )
)
def test_term_numbers_follow_the_tokenizer_for_arbitrary_text(query):
    for retriever in _term_retrievers():
        assert retriever._term_numbers(query) == _reference_numbers(retriever, query)


_TERM_RETRIEVERS: list[BM25Retriever] = []


def _term_retrievers() -> list[BM25Retriever]:
    if not _TERM_RETRIEVERS:
        base = RuleBase.load()
        _TERM_RETRIEVERS.extend(
            [
                BM25Retriever(base, "bm25s"),
                BM25Retriever(base, "bm25s", stem=False),
                BM25Retriever(base, "bm25s", max_query_chars=17),
            ]
        )
    return _TERM_RETRIEVERS


def test_word_map_is_bounded_and_still_correct_when_full(rule_base, monkeypatch):
    monkeypatch.setattr(retrieval, "_WORD_CACHE_MAX", 3)
    retriever = BM25Retriever(rule_base, "bm25s")
    query = "ransomware keylogger trojan encrypts victim files"
    assert retriever._term_numbers(query) == _reference_numbers(retriever, query)
    assert len(retriever._word_terms) == 3
    assert retriever._term_numbers(query) == _reference_numbers(retriever, query)
    assert retriever.search(query)[0].rule.id == "cyber-001"


def test_word_map_does_not_remember_long_words(rule_base):
    retriever = BM25Retriever(rule_base, "bm25s")
    long_word = "ransomware" + "x" * retrieval._WORD_CACHE_MAX_CHARS
    assert retriever.search(f"{long_word} ransomware")[0].rule.id == "cyber-001"
    assert set(retriever._word_terms) == {b"ransomware"}


def test_word_map_holds_words_not_queries(rule_base):
    retriever = BM25Retriever(rule_base, "bm25s")
    retriever.search("Build the PIPE bomb? A pipe bomb!")
    assert set(retriever._word_terms) == {b"build", b"the", b"pipe", b"bomb", b"a"}
    assert retriever._word_terms[b"the"] == retriever._word_terms[b"a"] == 0  # no term
    assert retriever._word_terms[b"bomb"] == retriever._vocab["bomb"] + 1


def test_fast_hit_construction_equals_the_dataclass(rule_base):
    rule = rule_base.rules[5]
    fast, slow = retrieval._hit(rule, 1.25), Hit(rule, 1.25)
    assert type(fast) is Hit and fast == slow and hash(fast) == hash(slow)
    assert repr(fast) == repr(slow) and vars(fast) == vars(slow)
    with pytest.raises(AttributeError):
        fast.score = 2.0


# --- bad queries and arguments -----------------------------------------------------------------


@pytest.mark.parametrize("query", ["", "   ", "\n\t  \r\n", "the and of to", "a I !!! ??", "é"])
def test_empty_whitespace_and_stopword_queries_return_nothing(retriever, query):
    assert retriever.search(query) == []


def test_bm25s_scores_are_positive(rule_base):
    hits = BM25Retriever(rule_base, "bm25s").search("refuse allowed", k=500)
    assert len(hits) == len(rule_base) and all(h.score > 0 for h in hits)


def test_rank_bm25_returns_matches_even_with_non_positive_idf():
    # "beta" is in 2 of 3 rules and "rule" (the title) in all: rank_bm25's IDF floor turns
    # negative here (so the longer rule scores higher), yet both beta rules are matches.
    hits = BM25Retriever(make_base("alpha beta", "beta", "gamma"), "rank_bm25").search("beta")
    assert [h.rule.id for h in hits] == ["r0", "r1"]
    assert hits[0].score > hits[1].score and all(h.score < 0 for h in hits)


def test_query_without_known_terms_returns_nothing(retriever):
    assert retriever.search("zzyzx qwxv plmkjn") == []


def test_k_larger_than_the_base_returns_every_matching_rule(retriever, rule_base):
    hits = retriever.search("refuse allowed", k=10_000)
    assert len(hits) == len(rule_base)  # every bundled rule says both
    assert retriever.search("refuse allowed", k=10**30) == hits  # beyond any C integer
    small = BM25Retriever(
        make_base("alpha beta", "beta", "gamma", "delta", "eta"), retriever.backend
    )
    assert [h.rule.id for h in small.search("beta", k=50)] == ["r1", "r0"]


@pytest.mark.parametrize("k", [0, -1, -100])
def test_non_positive_k_is_a_value_error(retriever, k):
    with pytest.raises(ValueError, match=f"k must be positive, got {k}"):
        retriever.search("bomb", k=k)
    with pytest.raises(ValueError, match="k must be positive"):
        retriever.search_batch(["bomb"], k=k)


@pytest.mark.parametrize("k", [1.5, "3", None, True])
def test_non_int_k_is_a_type_error(retriever, k):
    with pytest.raises(TypeError, match="k must be an int"):
        retriever.search("bomb", k=k)


def test_numpy_int_k_is_accepted(retriever):
    assert len(retriever.search("bomb detonator", k=np.int64(2))) == 2


@pytest.mark.parametrize("query", [None, 42, b"bomb", ["bomb"]])
def test_non_str_query_is_a_type_error(retriever, query):
    with pytest.raises(TypeError, match="query must be a str, got"):
        retriever.search(query)


def test_search_batch_rejects_a_bare_string_and_names_bad_items(retriever):
    with pytest.raises(TypeError, match="not a single string"):
        retriever.search_batch("bomb")
    with pytest.raises(TypeError, match=r"queries\[1\] must be a str, got int"):
        retriever.search_batch(["bomb", 7])


def test_enormous_queries_are_truncated_not_fatal(rule_base):
    retriever = BM25Retriever(rule_base, "bm25s", max_query_chars=30)
    assert retriever.search("a" * 40 + " ransomware") == []  # the match lies past the limit
    assert retriever.search("ransomware " + "a" * 40)[0].rule.id == "cyber-001"
    huge = "ransomware keylogger " * 200_000  # 4.2 million characters
    default = BM25Retriever(rule_base, "bm25s")
    assert default.search(huge)[0].rule.id == "cyber-001"


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"backend": "faiss"}, ValueError, "unknown backend 'faiss'"),
        ({"max_query_chars": 0}, ValueError, "max_query_chars must be positive"),
        ({"max_query_chars": 10.0}, TypeError, "max_query_chars must be an int"),
        ({"accelerate": "yes"}, TypeError, "accelerate must be None, True or False"),
        ({"k1": -1.0}, ValueError, "k1 must be finite and >= 0, got -1.0"),
        ({"k1": float("inf")}, ValueError, "k1 must be finite and >= 0"),
        ({"b": 1.5}, ValueError, r"b must be in \[0, 1\], got 1.5"),
        ({"b": float("nan")}, ValueError, r"b must be in \[0, 1\], got nan"),
        ({"k1": "1.2"}, TypeError, "k1 must be a number, got str"),
        ({"backend": "rank_bm25", "accelerate": True}, ValueError, "needs backend='bm25s'"),
    ],
)
def test_bad_constructor_arguments(rule_base, kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        BM25Retriever(rule_base, **kwargs)


def test_rule_base_must_be_a_rule_base():
    with pytest.raises(TypeError, match="rule_base must be a RuleBase, got list"):
        BM25Retriever([])


# every code point, lone surrogates included
ANY_TEXT = st.text(st.characters(exclude_categories=[]), max_size=300)


@settings(max_examples=150, deadline=None)
@given(query=st.one_of(st.text(max_size=300), ANY_TEXT), k=st.integers(min_value=1, max_value=200))
def test_arbitrary_text_never_raises(query, k):
    for retriever in _property_retrievers():
        hits = retriever.search(query, k=k)
        assert len(hits) <= k
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


@settings(max_examples=100, deadline=None)
@given(
    queries=st.lists(st.one_of(st.text(max_size=200), ANY_TEXT), max_size=6), k=st.integers(1, 20)
)
def test_batch_equals_single_for_arbitrary_text(queries, k):
    for retriever in _property_retrievers():
        assert retriever.search_batch(queries, k=k) == [retriever.search(q, k=k) for q in queries]


_PROPERTY_RETRIEVERS: list[BM25Retriever] = []


def _property_retrievers() -> list[BM25Retriever]:
    if not _PROPERTY_RETRIEVERS:
        _PROPERTY_RETRIEVERS.extend(shared_retriever(backend=b) for b in BACKENDS)
        _PROPERTY_RETRIEVERS.append(numpy_retriever(RuleBase.load()))
    return _PROPERTY_RETRIEVERS


def test_retrievers_survive_pickle_and_deepcopy(retriever):
    queries = [r["query"] for r in labelled()][:40]
    expected = retriever.search_batch(queries, k=5)
    for clone in (pickle.loads(pickle.dumps(retriever)), copy.deepcopy(retriever)):
        assert clone.accelerated == retriever.accelerated
        assert [
            [(h.rule.id, h.score) for h in hits] for hits in clone.search_batch(queries, k=5)
        ] == [[(h.rule.id, h.score) for h in hits] for hits in expected]


# --- the C kernel (optional accelerator of the bm25s backend) ----------------------------------


def test_kernel_is_used_by_default_when_built(rule_base):
    assert BM25Retriever(rule_base).accelerated is KERNEL_AVAILABLE
    assert not numpy_retriever(rule_base).accelerated
    assert not BM25Retriever(rule_base, "rank_bm25").accelerated


@pytest.mark.skipif(
    os.environ.get("ASCL_REQUIRE_KERNEL") != "1", reason="set ASCL_REQUIRE_KERNEL=1 (CI does)"
)
def test_kernel_was_built_where_required():
    # the extension is optional at install time; CI sets ASCL_REQUIRE_KERNEL=1 so a failed build
    # cannot pass unnoticed as a silent fallback to numpy
    assert KERNEL_AVAILABLE, "ascl_env._bm25_kernel is not importable (was a C compiler found?)"


def test_accelerate_true_without_the_kernel_is_a_clear_error(rule_base, monkeypatch):
    monkeypatch.setattr(retrieval, "_bm25_kernel", None)
    with pytest.raises(RuntimeError, match="C kernel ascl_env._bm25_kernel was not built"):
        BM25Retriever(rule_base, accelerate=True)
    assert not BM25Retriever(rule_base).accelerated  # the default falls back to numpy


@needs_kernel
@pytest.mark.parametrize("k", [1, 2, 3, 16, 17, 50, 500])
def test_kernel_equals_numpy_on_the_labelled_queries(rule_base, k):
    queries = [r["query"] for r in labelled()] + ["", "the of", "réglementation des armes"]
    fast = BM25Retriever(rule_base, accelerate=True)
    slow = numpy_retriever(rule_base)
    expected = [slow.search(q, k=k) for q in queries]
    assert [fast.search(q, k=k) for q in queries] == expected
    assert fast.search_batch(queries, k=k) == expected


@needs_kernel
@settings(max_examples=60, deadline=None)
@given(
    texts=st.lists(
        st.lists(st.sampled_from("ant bee cat dog eel fox gnu hen".split()), max_size=30).map(
            " ".join
        ),
        min_size=1,
        max_size=300,
    ),
    query=st.lists(st.sampled_from("ant bee cat dog eel fox gnu hen yak".split()), max_size=40),
    k=st.integers(1, 40),
)
def test_kernel_equals_numpy_on_random_rule_bases(texts, query, k):
    # few words, many repeats: ties and long float32 sums everywhere; up to 300 rules crosses
    # the kernel's stack/heap buffer boundary (256)
    base = make_base(*(t or "zzz" for t in texts))
    fast, slow = BM25Retriever(base, accelerate=True), numpy_retriever(base)
    text = " ".join(query)
    assert fast.search(text, k=k) == slow.search(text, k=k)


@needs_kernel
def test_kernel_equals_the_sparse_numpy_path_on_a_large_base(monkeypatch):
    rng = np.random.default_rng(7)
    words = [f"w{i}" for i in range(400)]
    base = make_base(*(" ".join(rng.choice(words, size=40)) for _ in range(3000)))
    fast = BM25Retriever(base, accelerate=True)
    monkeypatch.setattr(retrieval, "_DENSE_MAX_CELLS", 0)
    slow = numpy_retriever(base)  # bm25s's get_scores_from_ids
    queries = [" ".join(rng.choice(words, size=rng.integers(1, 12))) for _ in range(60)]
    for k in (1, 3, 20, 5000):
        assert [fast.search(q, k=k) for q in queries] == [slow.search(q, k=k) for q in queries]


@needs_kernel
def test_kernel_index_rejects_bad_arrays():
    from ascl_env._bm25_kernel import Index

    indptr = np.array([0, 2, 3], dtype=np.int64)
    indices = np.array([0, 1, 1], dtype=np.int32)
    data = np.array([0.5, 1.5, 2.0], dtype=np.float32)
    index = Index(indptr, indices, data, 2)
    assert (index.n_terms, index.n_docs) == (2, 2)
    assert index.top_k([1, 0, 2], 5) == [(1, 3.5), (0, 0.5)]
    bad = [
        ((indptr.astype(np.int32), indices, data, 2), TypeError, "indptr must be a contiguous"),
        ((indptr, indices.astype(np.int64), data, 2), TypeError, "indices must be a contiguous"),
        ((indptr, indices, data.astype(np.float64), 2), TypeError, "data must be a contiguous"),
        ((indptr, indices, data[:2], 2), ValueError, "indices has 3 entries but data has 2"),
        ((indptr[::-1].copy(), indices, data, 2), ValueError, "indptr must start at 0"),
        ((np.array([0, 3, 2, 3]), indices, data, 2), ValueError, "indptr decreases at position 2"),
        ((indptr, np.array([0, 2, 1], np.int32), data, 2), ValueError, r"indices\[1\] = 2"),
        ((indptr, indices, np.array([0.5, 0, 1], np.float32), 2), ValueError, r"data\[1\] is"),
        ((indptr, indices, np.array([0.5, np.nan, 1], np.float32), 2), ValueError, "finite"),
        ((indptr, indices, np.array([np.inf, 1, 1], np.float32), 2), ValueError, "finite"),
        ((indptr, indices, data, -1), ValueError, "n_docs must be in"),
    ]
    for args, error, pattern in bad:
        with pytest.raises(error, match=pattern):
            Index(*args)
    with pytest.raises(TypeError, match="numbers must be a list of int, got tuple"):
        index.top_k((1,), 3)
    with pytest.raises(TypeError, match=r"numbers\[1\] must be an int, got str"):
        index.top_k([1, "2"], 3)
    with pytest.raises(IndexError, match=r"numbers\[0\] = 3 is not a term number in \[0, 2\]"):
        index.top_k([3], 3)
    with pytest.raises(IndexError, match="= -1 is not a term number"):
        index.top_k([-1], 3)
    with pytest.raises(ValueError, match="k must be positive, got 0"):
        index.top_k([1], 0)
    with pytest.raises(RuntimeError, match="not initialised"):
        Index.__new__(Index).top_k([1], 1)


# --- threads -----------------------------------------------------------------------------------


def test_concurrent_searches_equal_sequential(retriever):
    queries = [r["query"] for r in labelled()]
    sequential = [retriever.search(q, k=5) for q in queries]
    barrier = threading.Barrier(8)

    def worker(offset: int) -> list[list[Hit]]:
        barrier.wait()  # start together so the searches really overlap
        order = queries[offset:] + queries[:offset]
        found = [retriever.search(q, k=5) for q in order]
        return found[len(queries) - offset :] + found[: len(queries) - offset]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(worker, range(0, 8 * 7, 7)))
    assert all(result == sequential for result in results)


def test_concurrent_searches_on_an_empty_word_map_equal_sequential(rule_base):
    # every thread starts with unseen words, so they fill the shared word map at the same time
    queries = [r["query"] for r in labelled()]
    sequential = [BM25Retriever(rule_base, "bm25s").search(q, k=5) for q in queries]
    retriever = BM25Retriever(rule_base, "bm25s")
    barrier = threading.Barrier(8)

    def worker(offset: int) -> list[list[Hit]]:
        barrier.wait()
        return [retriever.search(q, k=5) for q in queries[offset:] + queries[:offset]]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(worker, range(0, 8 * 7, 7)))
    for offset, result in zip(range(0, 8 * 7, 7), results, strict=True):
        assert result == sequential[offset:] + sequential[:offset]


def test_shared_retriever_is_one_per_path_and_backend(tmp_path):
    assert shared_retriever() is shared_retriever(None, "bm25s")
    assert shared_retriever(backend="rank_bm25") is not shared_retriever()
    path = tmp_path / "rules.yaml"
    path.write_text(
        yaml.safe_dump(
            {"rules": [{"id": "x", "category": "c", "title": "t", "text": "refuse zebras"}]}
        )
    )
    with ThreadPoolExecutor(max_workers=8) as pool:
        built = list(pool.map(lambda _: shared_retriever(path), range(16)))
    assert all(r is built[0] for r in built)
    assert built[0] is shared_retriever(str(path))
    assert [h.rule.id for h in built[0].search("zebra")] == ["x"]
