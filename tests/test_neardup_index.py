"""synthrank.native.neardup.NearDupIndex: streamed near-duplicate clusters, verified, native == twin."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synthrank.bench.data import make_texts
from synthrank.errors import InvalidArgumentError
from synthrank.native import dedup
from synthrank.native.neardup import NearDupIndex

BACKENDS = ("native", "python")
WORDS = st.sampled_from(
    ["fever", "cough", "Fever", "rash", "the", "of", "pain", "acute", "ß", "Σ", "42", "—"]
)
SENTENCES = st.lists(WORDS, max_size=25).map(" ".join)


def index_clusters(
    texts: list[str], backend: str, scratch: Path, batch: int = 3, **options: Any
) -> np.ndarray:
    """Add `texts` in batches of `batch`, checking the exact hashes each `add` returns."""
    with NearDupIndex(scratch, backend=backend, **options) as index:
        for start in range(0, len(texts), batch):
            hashes = index.add(texts[start : start + batch])
            assert np.array_equal(hashes, dedup.exact_hashes(texts[start : start + batch], backend=backend))
        assert len(index) == len(texts)
        clusters = index.clusters()
    assert not scratch.exists()
    assert clusters.dtype == np.int64
    return clusters


def chain_texts() -> tuple[str, str, str]:
    """A ~ B and B ~ C share 24 of their 36 words, A ~ C 18 of 42."""
    words = [f"word{i}" for i in range(42)]
    return " ".join(words[0:30]), " ".join(words[6:36]), " ".join(words[12:42])


@pytest.mark.parametrize("backend", BACKENDS)
def test_clusters_do_not_chain_below_the_threshold(backend: str, tmp_path: Path) -> None:
    a, b, c = chain_texts()
    signatures = dedup.minhash_signatures([a, b, c], backend=backend)
    agree = {(i, j): float(np.mean(signatures[i] == signatures[j])) for i, j in ((0, 1), (1, 2), (0, 2))}
    assert agree[0, 1] >= 0.5 and agree[1, 2] >= 0.5 and agree[0, 2] < 0.5
    # B joins A's cluster; C is compared with that cluster through its leader A only, so it leads
    # its own cluster (its exact copy joins it) although it reaches the threshold with B.
    clusters = index_clusters([a, b, c, c.upper()], backend, tmp_path / "s", threshold=0.5)
    assert clusters.tolist() == [0, 0, 2, 2]


@pytest.mark.parametrize("backend", BACKENDS)
def test_passages_without_shingles_join_only_exact_copies(backend: str, tmp_path: Path) -> None:
    texts = ["!!!", "???", "!!!", "...", "", "?!", "", "Same text.", "same   TEXT!"]
    # the last two normalise differently but share every shingle
    clusters = index_clusters(texts, backend, tmp_path / "s", batch=2)
    assert clusters.tolist() == [0, 1, 0, 3, 4, 5, 4, 7, 7]


@pytest.mark.parametrize("backend", BACKENDS)
def test_exact_copies_join_their_original_cluster(backend: str, tmp_path: Path) -> None:
    a, b, _ = chain_texts()
    # b joins a; copies of the member b and of the leader a, in later batches, join a's cluster too
    texts = [a, "an unrelated passage about fever", b, b, a.upper(), "x " + b, b + "  "]
    clusters = index_clusters(texts, backend, tmp_path / "s", batch=2, threshold=0.5)
    assert clusters.tolist() == [0, 1, 0, 0, 0, 0, 0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_members_reach_the_threshold_with_their_leader(
    backend: str, liveqa_answers: list[str], tmp_path: Path
) -> None:
    texts = liveqa_answers[:300]
    threshold = 0.6
    clusters = index_clusters(texts, backend, tmp_path / "s", batch=64, threshold=threshold)
    signatures = dedup.minhash_signatures(texts)
    members = np.flatnonzero(clusters != np.arange(len(texts)))
    assert len(members) > 0  # the pool repeats answers
    for member in members.tolist():
        leader = int(clusters[member])
        assert leader < member and clusters[leader] == leader
        assert float(np.mean(signatures[member] == signatures[leader])) >= threshold


@pytest.mark.native
@pytest.mark.parametrize(
    ("seed", "threshold", "shingle"), [(0, 0.8, "char"), (1, 0.5, "char"), (2, 0.7, "word")]
)
def test_parity_on_planted_near_duplicates(seed: int, threshold: float, shingle: str, tmp_path: Path) -> None:
    texts = make_texts(600, seed=seed, min_words=3, max_words=30, near_dup_fraction=0.3)
    rng = np.random.default_rng(seed)
    for position in rng.choice(len(texts), size=30, replace=False).tolist():
        texts[position] = str(rng.choice(["", "!", "?!", "a", "ab", " ", "...", "—"]))
    options: dict[str, Any] = {"threshold": threshold, "num_perm": 64, "shingle": shingle, "seed": seed}
    native = index_clusters(texts, "native", tmp_path / "n", batch=37, **options)
    python = index_clusters(texts, "python", tmp_path / "p", batch=600, **options)
    assert native.tolist() == python.tolist()
    assert np.sum(native != np.arange(len(texts))) >= 60  # the planted copies were found


@pytest.mark.native
def test_parity_past_the_write_buffer(tmp_path: Path) -> None:
    """Over 2,048 leaders (a 1 MiB write buffer at 128 values): signatures are read back from the
    scratch file, and results still match the twin's and do not depend on batches."""
    texts = make_texts(3000, seed=5, min_words=12, max_words=30, near_dup_fraction=0.2)
    native = index_clusters(texts, "native", tmp_path / "n", batch=1000)
    assert native.tolist() == index_clusters(texts, "native", tmp_path / "n", batch=7).tolist()
    assert native.tolist() == index_clusters(texts, "python", tmp_path / "p", batch=3000).tolist()
    assert len(np.unique(native)) > 2048


@pytest.mark.native
@settings(max_examples=60, deadline=None)
@given(st.lists(SENTENCES, min_size=1, max_size=6), st.data(), st.sampled_from([0.3, 0.5, 0.8, 1.0]))
def test_parity_on_generated_texts(bases: list[str], data: st.DataObject, threshold: float) -> None:
    texts: list[str] = []
    for _ in range(data.draw(st.integers(0, 14))):
        words = data.draw(st.sampled_from(bases)).split()
        change_a_word: bool = data.draw(st.booleans())
        if words and change_a_word:
            words[data.draw(st.integers(0, len(words) - 1))] = data.draw(WORDS)
        texts.append(" ".join(words).upper() if data.draw(st.booleans()) else " ".join(words))
    batch = data.draw(st.integers(1, 5))
    options: dict[str, Any] = {"threshold": threshold, "num_perm": 32, "shingle_size": 3}
    with tempfile.TemporaryDirectory() as folder:
        native, python = (
            index_clusters(texts, b, Path(folder) / b, batch=batch, **options) for b in BACKENDS
        )
    assert native.tolist() == python.tolist()


@pytest.mark.parametrize("backend", BACKENDS)
def test_closed_index_keeps_its_clusters_and_refuses_to_add(backend: str, tmp_path: Path) -> None:
    index = NearDupIndex(tmp_path / "s", backend=backend)
    index.add(["one passage", "one passage"])
    index.close()
    assert index.clusters().tolist() == [0, 0] and index.leaders() == 1
    with pytest.raises(InvalidArgumentError, match="closed"):
        index.add(["another"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_arguments_name_the_argument(backend: str, tmp_path: Path) -> None:
    scratch = tmp_path / "s"
    bad: list[tuple[dict[str, Any], str]] = [
        ({"threshold": 0.0}, "threshold"),
        ({"threshold": "high"}, "threshold"),
        ({"num_perm": 0}, "num_perm"),
        ({"shingle_size": 0}, "shingle_size"),
        ({"shingle": "byte"}, "shingle"),
        ({"seed": -1}, "seed"),
    ]
    for options, name in bad:
        with pytest.raises(InvalidArgumentError, match=name):
            NearDupIndex(scratch, backend=backend, **options)
    with pytest.raises(InvalidArgumentError, match="scratch_path"):
        NearDupIndex(None, backend=backend)  # type: ignore[arg-type]
    with NearDupIndex(scratch, backend=backend) as index:
        with pytest.raises(InvalidArgumentError, match="texts"):
            index.add("not a list")  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="threads"):
            index.add(["a"], threads=-1)


@pytest.mark.native
def test_unwritable_scratch_path_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="scratch file"):
        NearDupIndex(tmp_path / "no-such-folder" / "s", backend="native")
