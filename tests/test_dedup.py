"""synthrank.native.dedup: exact and near duplicates on real and generated text, and native == reference."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synthrank.errors import InvalidArgumentError
from synthrank.native import dedup
from synthrank.native.reference.dedup import jaccard, shingle_hashes

BACKENDS = ("native", "python")
WORDS = st.sampled_from(
    ["fever", "cough", "Fever", "rash", "the", "of", "pain", "acute", "ß", "Σ", "42", "—"]
)
SENTENCES = st.lists(WORDS, max_size=25).map(" ".join)
# Unassigned code points (Cn) may differ: the native tables are newer than Python's database.
ASSIGNED_TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs", "Cn")), max_size=30)


def edited(sentence: str, data: st.DataObject) -> str:
    words = sentence.split()
    change_a_word: bool = data.draw(st.booleans())
    if words and change_a_word:
        words[data.draw(st.integers(0, len(words) - 1))] = data.draw(WORDS)
    return " ".join(words).upper() if data.draw(st.booleans()) else " ".join(words)


PARAPHRASE = (
    "Polycystic ovary syndrome is a condition in which a woman has an imbalance of female sex hormones. "
    "This may lead to changes in the menstrual cycle, cysts in the ovaries, trouble getting pregnant, "
    "and other health problems."
)


@pytest.mark.parametrize("backend", BACKENDS)
def test_finds_a_lightly_edited_copy_and_keeps_others_apart(backend: str, liveqa_answers: list[str]) -> None:
    others = [a for a in liveqa_answers[1:60] if "polycystic" not in a.lower()]
    edited_copy = PARAPHRASE.replace("may lead to", "can lead to").replace("health problems", "health issues")
    texts = [PARAPHRASE, *others, edited_copy, PARAPHRASE.upper() + "  "]
    clusters = dedup.near_duplicates(texts, threshold=0.7, backend=backend)
    assert clusters[-2] == 0 and clusters[-1] == 0
    distinct_others = {t: i + 1 for i, t in reversed(list(enumerate(others)))}
    assert all(clusters[i + 1] <= distinct_others[t] for i, t in enumerate(others))
    assert not np.any(clusters[1 : len(others) + 1] == 0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_exact_duplicates_and_empty_texts(backend: str) -> None:
    texts = ["", "!!!", "", "???", "Same text.", "same   TEXT!"]
    clusters = dedup.near_duplicates(texts, backend=backend)
    # "" and "" are exact copies; "!!!" and "???" have no shingle and differ, so stay alone;
    # the last two normalise differently but share every shingle (Jaccard 1).
    assert clusters.tolist() == [0, 1, 0, 3, 4, 4]
    hashes = dedup.exact_hashes(["Straße", "STRASSE", "strasse "], backend=backend)
    assert hashes[0] == hashes[1] != hashes[2]


def test_verification_respects_the_threshold(liveqa_answers: list[str]) -> None:
    texts = liveqa_answers[:300]
    threshold = 0.6
    clusters = dedup.near_duplicates(texts, threshold=threshold)
    exact = dedup.exact_hashes(texts).tolist()
    members: dict[int, list[int]] = {}
    for index, root in enumerate(clusters.tolist()):
        members.setdefault(root, []).append(index)
    joined = [group for group in members.values() if len(group) > 1]
    assert joined  # the pool repeats answers
    for group in joined:
        # each cluster must be connected by pairs that are exact copies or reach the threshold
        sets = {i: shingle_hashes(texts[i], 5, "char") for i in group}
        reached, frontier = {group[0]}, [group[0]]
        while frontier:
            current = frontier.pop()
            for other in group:
                close = exact[current] == exact[other] or jaccard(sets[current], sets[other]) >= threshold
                if other not in reached and close:
                    reached.add(other)
                    frontier.append(other)
        assert reached == set(group)
    unverified = dedup.near_duplicates(texts, threshold=threshold, verify=False)
    assert len(set(unverified.tolist())) <= len(members)


def test_signatures_shape_and_empty_rows() -> None:
    signatures = dedup.minhash_signatures(["", "abc def", "abc def"], num_perm=16)
    assert signatures.shape == (3, 16) and signatures.dtype == np.uint64
    assert np.all(signatures[0] == np.iinfo(np.uint64).max)
    assert np.array_equal(signatures[1], signatures[2]) and np.all(signatures[1] < 2**63)


@pytest.mark.parametrize("backend", BACKENDS)
def test_signature_agreement_estimates_jaccard(backend: str) -> None:
    edited_copy = PARAPHRASE.replace("may lead to", "can lead to").replace("health problems", "health issues")
    unrelated = "Aspirin is a medication used to reduce pain, fever, or inflammation in adults."
    signatures = dedup.minhash_signatures(
        [PARAPHRASE, edited_copy, unrelated], num_perm=1024, backend=backend
    )
    base = shingle_hashes(PARAPHRASE, 5, "char")
    for other, row in ((edited_copy, 1), (unrelated, 2)):
        agreement = float(np.mean(signatures[0] == signatures[row]))
        assert abs(agreement - jaccard(base, shingle_hashes(other, 5, "char"))) < 0.08


def test_lsh_params_match_datasketch() -> None:
    datasketch_lsh = pytest.importorskip("datasketch.lsh")
    for threshold, num_perm in ((0.5, 128), (0.8, 128), (0.9, 256), (0.7, 64), (0.3, 32)):
        expected = datasketch_lsh._optimal_param(threshold, num_perm, 0.5, 0.5)
        for backend in BACKENDS:
            assert dedup.lsh_params(threshold, num_perm, backend=backend) == expected


def test_bad_arguments_name_the_argument() -> None:
    for threshold in (0.0, 1.5, float("nan")):
        with pytest.raises(InvalidArgumentError, match="threshold"):
            dedup.near_duplicates(["a"], threshold=threshold)
    with pytest.raises(InvalidArgumentError, match="num_perm"):
        dedup.minhash_signatures(["a"], num_perm=0)
    with pytest.raises(InvalidArgumentError, match="shingle"):
        dedup.minhash_signatures(["a"], shingle="line")
    with pytest.raises(InvalidArgumentError, match="shingle_size"):
        dedup.near_duplicates(["a"], shingle_size=-2)


@pytest.mark.native
@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.one_of(SENTENCES, ASSIGNED_TEXT), max_size=8),
    st.sampled_from(["char", "word"]),
    st.integers(1, 6),
    st.integers(0, 2**64 - 1),
)
def test_parity_hashes_and_signatures(texts: list[str], shingle: str, size: int, seed: int) -> None:
    options: dict[str, Any] = {"num_perm": 16, "shingle_size": size, "shingle": shingle, "seed": seed}
    native, python = (dedup.minhash_signatures(texts, backend=b, **options) for b in BACKENDS)
    assert np.array_equal(native, python)
    native, python = (dedup.exact_hashes(texts, backend=b) for b in BACKENDS)
    assert np.array_equal(native, python)


@pytest.mark.native
@settings(max_examples=60, deadline=None)
@given(st.floats(0.05, 1.0), st.integers(1, 128))
def test_parity_lsh_params(threshold: float, num_perm: int) -> None:
    assert dedup.lsh_params(threshold, num_perm, backend="native") == dedup.lsh_params(
        threshold, num_perm, backend="python"
    )


@pytest.mark.native
@settings(max_examples=60, deadline=None)
@given(
    st.lists(SENTENCES, min_size=1, max_size=6),
    st.data(),
    st.sampled_from([0.3, 0.5, 0.8, 1.0]),
    st.sampled_from(["char", "word"]),
    st.booleans(),
)
def test_parity_near_duplicates(
    bases: list[str], data: st.DataObject, threshold: float, shingle: str, verify: bool
) -> None:
    texts = [edited(data.draw(st.sampled_from(bases)), data) for _ in range(data.draw(st.integers(0, 14)))]
    options: dict[str, Any] = {
        "threshold": threshold,
        "num_perm": 32,
        "shingle_size": 3,
        "shingle": shingle,
        "verify": verify,
    }
    native, python = (dedup.near_duplicates(texts, backend=b, **options) for b in BACKENDS)
    assert native.tolist() == python.tolist()


@pytest.mark.native
def test_parity_near_duplicates_on_real_answers(liveqa_answers: list[str]) -> None:
    texts = liveqa_answers[:120]
    native, python = (dedup.near_duplicates(texts, threshold=0.5, backend=b) for b in BACKENDS)
    assert native.tolist() == python.tolist()
