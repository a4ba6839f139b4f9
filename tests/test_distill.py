"""The warm start: pseudo-queries, teacher lists, the listwise KL loss, the stage and train's start."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from synthrank.pseudo_queries import cut_sentence, pseudo_query_sources
from synthrank.records import Passage, Query, RunLayout, read_jsonl
from synthrank.stages.distill import (
    FROM_DISTILL,
    RECIPE_DEFAULTS,
    DistillConfig,
    build_lists,
    is_trained_reranker,
    run_distill,
    student_config,
)
from synthrank.stages.mine import MineConfig, in_dev
from synthrank.stages.retrieve import EmbedConfig, RetrieveConfig, run_retrieve
from synthrank.stages.train.losses import listwise_kl
from synthrank.stages.train.trainer import TrainConfig, run_train
from synthrank.stages.train.warm_start import MARKER, warm_start_for
from test_training import tiny_config
from test_training_support import tiny_model, tiny_run

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SMALL = DistillConfig(
    enabled="on",
    pseudo_queries=40,
    list_size=6,
    random_candidates=2,
    min_sentence_words=3,
    batch_size=4,
    epochs=1,
    max_length=64,
    learning_rate=1e-3,
    checkpoint_every=0,
)
MINE = MineConfig(dev_fraction=0.2)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> RunLayout:
    """The tiny run plus what distill reads: passages.npz (held-out rows), embeddings, candidates."""
    layout = tiny_run(tmp_path_factory.mktemp("run"))
    split = json.loads(layout.split.read_text())
    passages = list(read_jsonl(layout.passages, Passage))
    heldout = np.asarray([p.doc_id in split["heldout_doc_ids"] for p in passages])
    n = len(passages)
    np.savez(
        layout.passage_arrays,
        exact_hash=np.arange(n, dtype=np.uint64),
        cluster_id=np.arange(n, dtype=np.int64),
        n_tokens=np.full(n, 20, dtype=np.int32),
        heldout=heldout,
    )
    run_retrieve(layout, RetrieveConfig(k=10))
    return layout


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("model") / "tiny")


def test_cut_sentence_takes_one_sentence_out_of_its_passage() -> None:
    text = "Gout is a kind of arthritis. It causes sudden pain in the big toe. Diet can help."
    query, rest = cut_sentence(text, np.random.default_rng(0), min_words=4)
    assert query in text and query not in rest
    assert sorted((query + " " + rest).split()) == sorted(text.split())
    assert cut_sentence("One sentence only, long enough to use.", np.random.default_rng(0)) is None


def test_listwise_kl_is_zero_when_the_student_matches_the_teacher() -> None:
    teacher = torch.tensor([[0.9, 0.5, 0.1]])
    same = teacher / 0.05
    assert listwise_kl(same, teacher, 0.05).item() == pytest.approx(0.0, abs=1e-6)
    p = torch.softmax(teacher / 0.05, -1)
    flat = torch.zeros(1, 3)
    by_hand = float((p * (p.log() - math.log(1 / 3))).sum())
    assert listwise_kl(flat, teacher, 0.05).item() == pytest.approx(by_hand, abs=1e-5)


def test_teacher_lists_hold_the_cut_passage_first_and_leave_out_dev_and_heldout(run: RunLayout) -> None:
    lists = build_lists(run, SMALL, EmbedConfig(), MINE)
    passages = list(read_jsonl(run.passages, Passage))
    split = json.loads(run.split.read_text())
    banned = {
        p.reranker_text for p in passages if p.doc_id in split["heldout_doc_ids"] or in_dev(p.doc_id, MINE)
    }
    assert lists.stats.pseudo_queries > 0 and lists.stats.synthetic_queries > 0
    assert len(lists) == lists.stats.pseudo_queries + lists.stats.synthetic_queries
    by_id = {p.passage_id: p for p in passages}
    assert len(lists.sources) == lists.stats.pseudo_queries
    for i, source in enumerate(lists.sources):  # where each pseudo-query was cut from
        assert lists.group(i, 0)[0] in by_id[source].text
    assert lists.teacher.shape == (len(lists), SMALL.list_size)
    for i in range(lists.stats.pseudo_queries):
        query, texts = lists.group(i, 0)
        assert query not in texts[0]  # the own passage, without the sentence
        assert lists.targets(i, 0)[0] == max(lists.targets(i, 0)) or len(set(texts)) == len(texts)
    for i in range(len(lists)):
        _, texts = lists.group(i, 0)
        assert len(texts) == SMALL.list_size
        assert not banned & set(texts[1:])
    # the teacher's scores are the bi-encoder's cosines: in [-1, 1], and not all equal
    assert np.all(np.abs(lists.teacher) <= 1.0 + 1e-5) and lists.teacher.std() > 0


def test_distill_trains_a_warm_start_that_train_starts_from(run: RunLayout, tiny: Path) -> None:
    train = tiny_config(tiny, epochs=1)
    counts = run_distill(run, SMALL, train, EmbedConfig(), MINE)
    assert counts["warm_start"] == "trained" and counts["steps"] >= 1
    assert (run.warm_start / "config.json").is_file()
    # recorded, so that pseudo-queries picking a fusion weight are never ones it trained on
    assert len(pseudo_query_sources(run)) == counts["pseudo_queries"]
    assert warm_start_for(run, str(tiny)) == run.warm_start
    assert warm_start_for(run, "some/other-model") is None
    result = run_train(run, train)
    card = (run.model / "README.md").read_text()
    assert result["steps"] >= 1 and str(run.warm_start) in card
    off = run_distill(run, DistillConfig(enabled="off"), train, EmbedConfig(), MINE)
    assert off["warm_start"] == "skipped" and warm_start_for(run, str(tiny)) is None
    assert json.loads((run.warm_start / MARKER).read_text())["enabled"] is False


def test_the_student_takes_every_train_option_it_does_not_set(tmp_path: Path) -> None:
    """[distill]'s options, the recipe at TrainConfig's defaults, and [train]'s own for all the rest
    (the start model, the machine, dev), so a new TrainConfig field reaches the warm start too."""
    import dataclasses

    defaults = TrainConfig()
    changed = {
        f.name: (not getattr(defaults, f.name)) if isinstance(getattr(defaults, f.name), bool) else None
        for f in dataclasses.fields(TrainConfig)
    }
    changed.update(
        model="some/model",
        loss="bce",
        group_size=5,
        batch_size=3,
        grad_accumulation=2,
        epochs=4,
        max_steps=9,
        learning_rate=3e-5,
        head_learning_rate=1e-4,
        weight_decay=0.2,
        warmup_ratio=0.3,
        max_grad_norm=2.0,
        max_length=300,
        max_query_tokens=100,
        random_negative_share=0.5,
        too_few_negatives="drop",
        negatives="random",
        positives="source",
        seed=7,
        precision="bf16",
        device="cpu",
        cpu_threads=3,
        max_forward_pairs=48,
        checkpoint_every=11,
        keep_checkpoints=5,
        eval_every=6,
        early_stopping_patience=2,
        dev_top_k=12,
        dev_max_queries=50,
        dev_min_queries=10,
        output="elsewhere",
        distill_weight=0.5,
        distill_temperature=0.1,
    )
    assert None not in changed.values(), "give the new TrainConfig field a value here"
    train = TrainConfig(**changed)
    assert all(getattr(train, name) != getattr(defaults, name) for name in changed)
    student = student_config(train, SMALL, tmp_path / "warm")
    set_here = {"group_size", "max_query_tokens", "early_stopping_patience", "output"}
    assert (student.group_size, student.max_query_tokens) == (SMALL.list_size, SMALL.max_length - 1)
    assert (student.early_stopping_patience, student.output) == (0, str(tmp_path / "warm"))
    for name in changed:
        if name in FROM_DISTILL:
            assert getattr(student, name) == getattr(SMALL, name), name
        elif name in RECIPE_DEFAULTS:
            assert getattr(student, name) == getattr(defaults, name), name
        elif name not in set_here:
            assert getattr(student, name) == getattr(train, name), name


def test_auto_skips_the_warm_start_for_a_trained_reranker(run: RunLayout, tiny: Path) -> None:
    assert is_trained_reranker(str(tiny))  # a sequence-classification checkpoint: a reranker already
    assert not is_trained_reranker("sentence-transformers/all-MiniLM-L6-v2")
    train = TrainConfig(model=str(tiny))
    counts = run_distill(run, DistillConfig(), train, EmbedConfig(), MINE)
    assert counts == {"warm_start": "skipped", "reason": f"{tiny} is already a trained reranker"}


def test_lce_can_keep_the_teacher_in_the_loss(run: RunLayout, tiny: Path) -> None:
    from synthrank.stages.retrieve import load_embeddings
    from synthrank.stages.train.data import GroupOptions, load_groups, with_teacher

    groups = load_groups(run, GroupOptions(group_size=4, random_negative_share=0.5))
    scored = with_teacher(run, groups)
    passages = {p.passage_id: p for p in read_jsonl(run.passages, Passage)}
    rows = {pid: i for i, pid in enumerate(passages)}
    query_rows = {q.query_id: i for i, q in enumerate(read_jsonl(run.queries, Query))}
    q_vecs, p_vecs = load_embeddings(run, "queries"), load_embeddings(run, "passages")
    for index in range(3):
        _, members = groups.members(index, epoch=1)
        assert [t for _, t in members] == scored.group(index, 1)[1]
        q = q_vecs[query_rows[groups.groups[index].query_id]]
        expected = [float(p_vecs[rows[pid]] @ q) for pid, _ in members]
        assert scored.targets(index, 1) == pytest.approx(expected, abs=1e-5)
    train = tiny_config(
        tiny,
        epochs=1,
        learning_rate=2e-5,
        distill_weight=0.5,
        warm_start=False,
        output=str(run.root / "lce-kl"),
    )
    result = run_train(run, train)
    assert result["steps"] >= 1 and math.isfinite(result["mean_loss"])
