"""Training: the group contract, losses, the trainer, resume after a kill, saved-model loading, CLI."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from synthrank.cli import main
from synthrank.errors import ConfigError, InvalidArgumentError
from synthrank.records import Passage, RunLayout, TrainGroup, read_jsonl, write_jsonl_atomic
from synthrank.stages.train.data import GroupOptions, encode_pairs, load_groups
from synthrank.stages.train.losses import bce_loss, lce_loss
from synthrank.stages.train.trainer import TrainConfig, Trainer, run_train
from test_training_support import tiny_model, tiny_run

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]


def tiny_config(model: Path, **overrides: object) -> TrainConfig:
    options: dict = dict(
        model=str(model),
        batch_size=4,
        group_size=4,
        epochs=2,
        learning_rate=1e-3,
        max_length=64,
        max_query_tokens=16,
        cpu_threads=1,
        checkpoint_every=0,
        early_stopping_patience=0,
        dev_min_queries=1,
    )
    options.update(overrides)
    return TrainConfig(**options)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("model") / "tiny")


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


# --- losses ------------------------------------------------------------------------------------


def test_lce_loss_is_softmax_cross_entropy_with_the_positive_first() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.5, 0.5, 3.0]])
    by_hand = [
        -(2.0 - math.log(math.exp(2) + math.exp(1) + 1)),
        -(0.5 - math.log(2 * math.exp(0.5) + math.exp(3))),
    ]
    assert lce_loss(logits).item() == pytest.approx(sum(by_hand) / 2, abs=1e-6)


def test_bce_loss_labels_the_first_column_relevant() -> None:
    logits = torch.tensor([[1.0, -1.0]])
    sig = 1 / (1 + math.exp(-1.0))
    by_hand = -(math.log(sig) + math.log(1 - (1 - sig))) / 2  # both pairs are right with p = sig
    assert bce_loss(logits).item() == pytest.approx(by_hand, abs=1e-6)


# --- data --------------------------------------------------------------------------------------


def test_groups_put_the_positive_first_and_rotate_negatives_per_epoch(tmp_path: Path) -> None:
    layout = tiny_run(tmp_path, n_negatives=7)
    data = load_groups(layout, GroupOptions(group_size=4, seed=1))
    group = data.groups[0]
    query, texts = data.group(0, epoch=0)
    assert query == group.query and texts[0] == group.pos[0] and len(texts) == 4
    assert set(texts[1:]) <= set(group.neg)
    epochs = [data.group(0, e)[1][1:] for e in range(3)]
    assert len({tuple(e) for e in epochs}) == 3, "later epochs must see other negatives"
    assert set(epochs[0]) | set(epochs[1]) | set(epochs[2]) == set(group.neg), "the rotation covers the pool"
    again = load_groups(layout, GroupOptions(group_size=4, seed=1))
    assert [again.group(i, 1) for i in range(5)] == [data.group(i, 1) for i in range(5)]
    other_seed = load_groups(layout, GroupOptions(group_size=4, seed=2))
    assert [other_seed.group(i, 0) for i in range(10)] != [data.group(i, 0) for i in range(10)]
    assert list(data.epoch_order(0)) != list(data.epoch_order(1))


def test_too_few_negatives_are_padded_or_dropped_and_counted(tmp_path: Path) -> None:
    layout = tiny_run(tmp_path, n_negatives=2)
    padded = load_groups(layout, GroupOptions(group_size=5, too_few_negatives="pad"))
    assert padded.stats.padded_too_few_negatives == len(padded) == 60
    _, texts = padded.group(3, 0)
    group = padded.groups[3]
    assert len(texts) == 5 and len(set(texts[1:])) == 4
    assert group.pos[0] not in texts[1:]
    with pytest.raises(InvalidArgumentError, match="no usable group"):
        load_groups(layout, GroupOptions(group_size=5, too_few_negatives="drop"))
    dropped = load_groups(layout, GroupOptions(group_size=3, too_few_negatives="drop"))
    assert dropped.stats.dropped_too_few_negatives == 0 and len(dropped) == 60


def test_random_negative_share_mixes_in_corpus_passages(tmp_path: Path) -> None:
    layout = tiny_run(tmp_path, n_negatives=6)
    data = load_groups(layout, GroupOptions(group_size=5, random_negative_share=0.5))
    group = data.groups[0]
    _, texts = data.group(0, 0)
    hard = [t for t in texts[1:] if t in group.neg]
    assert len(hard) == 2 and len(texts) == 5
    assert all(t not in group.pos for t in texts[1:])


def test_random_negatives_never_come_from_held_out_documents_or_the_dev_set(tmp_path: Path) -> None:
    layout = tiny_run(tmp_path, heldout_topics=12)
    withheld = json.loads(layout.split.read_text())["heldout_doc_ids"]
    with open(layout.dev / "corpus.jsonl") as fh:
        dev = {json.loads(line)["_id"] for line in fh}
    passages = list(read_jsonl(layout.passages, Passage))
    banned = {p.reranker_text for p in passages if p.doc_id in withheld or p.passage_id in dev}
    data = load_groups(layout, GroupOptions(group_size=8, negatives="random", positives="source"))
    drawn = {t for epoch in range(5) for i in range(len(data)) for t in data.group(i, epoch)[1][1:]}
    assert len(dev) == 12 and data.stats.random_pool_size == 36 - 12
    assert drawn and not drawn & banned


def test_naive_baseline_uses_the_source_passage_and_random_negatives(tmp_path: Path) -> None:
    layout = tiny_run(tmp_path)
    groups = [
        TrainGroup("asthma symptoms", ["judged but not the source"], ["n"], "q-asthma#0", ["gout#1"], ["x"])
    ]
    write_jsonl_atomic(layout.train_groups, groups)
    data = load_groups(layout, GroupOptions(group_size=4, negatives="random", positives="source"))
    _, texts = data.group(0, 0)
    assert "The symptoms of asthma" in texts[0]  # the source passage, its title first
    assert len(texts) == 4 and texts[0] not in texts[1:] and "n" not in texts


def test_encode_pairs_cuts_the_passage_never_the_query(tiny: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny)
    query = "what causes asthma attacks at night"
    long_query = " ".join(["asthma"] * 50)
    enc = encode_pairs(tokenizer, [query, long_query], ["word " * 500, "short passage"], 32, 10)
    assert enc["input_ids"].shape[1] == 32
    first = tokenizer.decode(enc["input_ids"][0], skip_special_tokens=True)
    assert first.startswith(query)
    query_part = (enc["token_type_ids"][1] == 0) & (enc["attention_mask"][1] == 1)
    assert int(query_part.sum()) == 10 + 2  # capped query + [CLS] + [SEP]
    assert "short passage" in tokenizer.decode(enc["input_ids"][1])


# --- trainer -----------------------------------------------------------------------------------


def test_train_saves_a_model_that_loads_everywhere_with_a_card(tmp_path: Path, tiny: Path) -> None:
    layout = tiny_run(tmp_path / "run")
    result = run_train(layout, tiny_config(tiny, eval_every=5))
    assert result["steps"] == 2 * (60 // 4) and result["data_groups_used"] == 60
    assert result["best_dev_ndcg@10"] is not None
    # the rate `plan` times the next training at: groups/s x pairs a group x max_length
    cfg = tiny_config(tiny)
    rate = result["groups_per_second"] * cfg.group_size * cfg.max_length
    assert result["pair_tokens_per_second"] == pytest.approx(rate)
    assert not torch.equal(weights(layout.model)["classifier.weight"], weights(tiny)["classifier.weight"])
    card = (layout.model / "README.md").read_text()
    assert f"base_model: {tiny}" in card and "| loss | lce |" in card and "groups_used | 60" in card

    from rerankers import Reranker
    from sentence_transformers import CrossEncoder
    from transformers import AutoModelForSequenceClassification

    pair = ("asthma symptoms", "The symptoms of asthma are described here.")
    assert CrossEncoder(str(layout.model)).predict([pair]).shape == (1,)
    assert AutoModelForSequenceClassification.from_pretrained(layout.model).config.num_labels == 1
    ranked = Reranker(str(layout.model), model_type="cross-encoder", verbose=0).rank(
        pair[0], [pair[1], "gout"]
    )
    assert len(ranked.results) == 2


def test_best_dev_checkpoint_is_the_output_and_early_stopping_stops(tmp_path: Path, tiny: Path) -> None:
    layout = tiny_run(tmp_path / "run")
    # One dev candidate per query: every model ranks it the same, so dev nDCG@10 cannot improve after
    # the first evaluation whatever the weights learn, and patience 1 stops at the second, always.
    config = tiny_config(
        tiny, epochs=6, eval_every=3, early_stopping_patience=1, learning_rate=5e-3, dev_top_k=1
    )
    result = run_train(layout, config)
    history = result["dev_history"]
    best = max(history, key=lambda h: h["dev_ndcg@10"])
    assert result["best_step"] == best["step"] and result["best_dev_ndcg@10"] == best["dev_ndcg@10"]
    assert [h["step"] for h in history] == list(range(3, result["steps"] + 1, 3))
    best_folder = layout.root / "checkpoints" / "model" / "best"
    assert torch.equal(weights(best_folder)["classifier.weight"], weights(layout.model)["classifier.weight"])
    assert result["stopped_early"]
    assert result["steps"] < result["total_steps"] and history[-1]["dev_ndcg@10"] <= best["dev_ndcg@10"]
    assert result["best_step"] == 3 and result["steps"] == 6  # the first evaluation's model is the output


def test_a_dev_set_too_small_to_trust_keeps_the_last_model(tmp_path: Path, tiny: Path) -> None:
    layout = tiny_run(tmp_path / "run")
    result = run_train(layout, tiny_config(tiny, epochs=2, dev_min_queries=1000, early_stopping_patience=1))
    assert result["dev_history"] == [] and result["best_step"] is None and not result["stopped_early"]
    assert result["steps"] == result["total_steps"]
    assert not (layout.root / "checkpoints" / "model" / "best").exists()


def test_max_steps_overrides_epochs_both_ways(tmp_path: Path, tiny: Path) -> None:
    layout = tiny_run(tmp_path / "run")
    shutil.rmtree(layout.dev)
    longer = run_train(layout, tiny_config(tiny, epochs=1, max_steps=20))  # 15 steps an epoch
    assert longer["steps"] == longer["total_steps"] == 20 and longer["epochs"] == pytest.approx(
        20 / 15, abs=1e-3
    )
    shorter = run_train(layout, tiny_config(tiny, epochs=2, max_steps=4, resume=False))
    assert shorter["steps"] == 4


def test_lce_training_learns_the_tiny_task(tmp_path: Path, tiny: Path) -> None:
    layout = tiny_run(tmp_path / "run")
    result = run_train(layout, tiny_config(tiny, epochs=8, learning_rate=3e-3))
    assert result["mean_loss"] < math.log(4) * 0.9  # below the loss of a uniform guess


def test_naive_baseline_trains_pointwise_on_source_passages(tmp_path: Path, tiny: Path) -> None:
    layout = tiny_run(tmp_path / "run")
    output = layout.root / "naive"
    cfg = tiny_config(tiny, loss="bce", negatives="random", positives="source", output=str(output), epochs=1)
    result = run_train(layout, cfg)
    assert result["data_groups_used"] == 60 and result["steps"] == 15
    assert (output / "model.safetensors").is_file() and not layout.model.exists()
    assert "| loss | bce |" in (output / "README.md").read_text()
    assert (layout.root / "checkpoints" / "naive" / "best").is_dir()


def test_the_head_can_learn_faster_than_the_encoder(tmp_path: Path, tiny: Path) -> None:
    from synthrank.stages.train.trainer import parameter_groups

    model = Trainer(tiny_run(tmp_path / "run"), tiny_config(tiny)).model
    groups = parameter_groups(model, tiny_config(tiny, learning_rate=1e-5, head_learning_rate=1e-3))
    fast = {id(p) for g in groups if g["lr"] == 1e-3 for p in g["params"]}
    assert fast == {id(model.classifier.weight), id(model.classifier.bias)}
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    no_decay = {id(p) for g in groups if g["weight_decay"] == 0.0 for p in g["params"]}
    assert id(model.classifier.bias) in no_decay and id(model.classifier.weight) not in no_decay


def test_bad_train_options_are_reported(tmp_path: Path, tiny: Path) -> None:
    with pytest.raises(ConfigError, match="group_size"):
        TrainConfig(group_size=0)
    layout = tiny_run(tmp_path / "run")
    with pytest.raises(InvalidArgumentError, match="fewer than one optimizer step"):
        Trainer(layout, tiny_config(tiny, batch_size=100))
    with pytest.raises(InvalidArgumentError, match=r"train_groups\.jsonl: not found"):
        Trainer(RunLayout(tmp_path / "none"), tiny_config(tiny))


KILL_AFTER_CHECKPOINT = """
import os, signal, sys
from pathlib import Path
sys.path[:0] = [{tests!r}]
from synthrank.records import RunLayout
from synthrank.stages.train.trainer import run_train
from test_training import tiny_config

def die(step, folder):
    if step == 6:
        os.kill(os.getpid(), signal.SIGKILL)

run_train(RunLayout({run!r}), tiny_config(Path({model!r}), checkpoint_every=3), on_checkpoint=die)
"""


def test_a_killed_run_resumes_to_the_same_weights(tmp_path: Path, tiny: Path) -> None:
    reference, killed = tiny_run(tmp_path / "reference"), tiny_run(tmp_path / "killed")
    for layout in (reference, killed):
        shutil.rmtree(layout.dev)  # final weights, not a best-dev pick, are compared
    run_train(reference, tiny_config(tiny, checkpoint_every=3))

    script = KILL_AFTER_CHECKPOINT.format(tests=str(REPO / "tests"), run=str(killed.root), model=str(tiny))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "python"), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert not killed.model.exists()
    assert sorted(p.name for p in (killed.root / "checkpoints" / "model").iterdir()) == [
        "step-00000003",
        "step-00000006",
    ]

    result = run_train(killed, tiny_config(tiny, checkpoint_every=3))
    assert result["resumed_from_step"] == 6 and result["steps_this_run"] == result["steps"] - 6
    expected, got = weights(reference.model), weights(killed.model)
    assert expected.keys() == got.keys()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=1e-6, msg=name)


@pytest.mark.filterwarnings("ignore:Seems like `optimizer.step\\(\\)` has been overridden")
def test_passes_of_fewer_pairs_sum_the_same_gradients(tmp_path: Path, tiny: Path) -> None:
    # without dropout (its masks depend on the pass shapes), one pass per micro-batch and one pass
    # per group give the same gradient; compared before the optimizer, which would magnify rounding
    still = tmp_path / "still"
    shutil.copytree(tiny, still)
    config = json.loads((still / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (still / "config.json").write_text(json.dumps(config))
    trainer = Trainer(tiny_run(tmp_path / "run"), tiny_config(still, grad_accumulation=2))
    trainer.optimizer.step = lambda *args, **kwargs: None  # type: ignore[method-assign]
    trainer.optimizer.zero_grad = lambda *args, **kwargs: None  # type: ignore[method-assign]
    order = np.arange(len(trainer.data))
    gradients, losses = {}, {}
    for groups in (4, 1):
        trainer.groups_per_pass = groups
        trainer.model.zero_grad(set_to_none=True)
        losses[groups] = trainer.train_step(order)
        named = trainer.model.named_parameters()
        gradients[groups] = {n: p.grad.clone() for n, p in named if p.grad is not None}
    assert gradients[4].keys() == gradients[1].keys() and len(gradients[4]) > 0
    assert losses[1] == pytest.approx(losses[4], rel=1e-5)
    for name, expected in gradients[4].items():
        torch.testing.assert_close(gradients[1][name], expected, rtol=1e-4, atol=1e-7, msg=name)


def test_forward_pairs_default_splits_on_cpu_only_in_whole_groups(tmp_path: Path, tiny: Path) -> None:
    layout = tiny_run(tmp_path / "run")
    assert Trainer(layout, tiny_config(tiny, batch_size=16, group_size=4)).groups_per_pass == 8
    assert Trainer(layout, tiny_config(tiny, max_forward_pairs=6)).groups_per_pass == 1
    assert Trainer(layout, tiny_config(tiny, max_forward_pairs=3)).groups_per_pass == 1
    assert Trainer(layout, tiny_config(tiny, max_forward_pairs=1000)).groups_per_pass == 4


def test_resume_refuses_a_checkpoint_made_with_other_options(tmp_path: Path, tiny: Path) -> None:
    layout = tiny_run(tmp_path / "run")
    shutil.rmtree(layout.dev)
    run_train(layout, tiny_config(tiny, checkpoint_every=3, max_steps=4))
    with pytest.raises(ConfigError, match="learning_rate"):
        run_train(layout, tiny_config(tiny, checkpoint_every=3, learning_rate=1e-4))
    result = run_train(layout, tiny_config(tiny, learning_rate=1e-4, resume=False))
    assert result["resumed_from_step"] is None


def test_start_from_a_saved_cross_encoder_keeps_its_head(tmp_path: Path, tiny: Path) -> None:
    from sentence_transformers import CrossEncoder

    hub_copy = tmp_path / "my-cross-encoder"
    CrossEncoder(str(tiny)).save(str(hub_copy))
    layout = tiny_run(tmp_path / "run")
    trainer = Trainer(layout, tiny_config(hub_copy))
    assert torch.equal(trainer.model.classifier.weight.detach(), weights(tiny)["classifier.weight"])


# --- CLI ---------------------------------------------------------------------------------------


def test_cli_train_then_evaluate(tmp_path: Path, tiny: Path) -> None:
    layout = tiny_run(tmp_path / "run")
    runner = CliRunner()
    args = [
        "train",
        str(layout.root),
        "--model",
        str(tiny),
        "--batch-size",
        "4",
        "--group-size",
        "4",
        "--epochs",
        "1",
        "--max-length",
        "64",
        "--max-query-tokens",
        "16",
        "--lr",
        "1e-3",
    ]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert '"steps": 15' in result.output and (layout.model / "model.safetensors").is_file()

    result = runner.invoke(
        main,
        [
            "evaluate",
            str(layout.root),
            "--model",
            f"base={tiny}",
            "--model",
            f"ours={layout.model}",
            "--dataset",
            "indomain",
            "--no-bi-encoder",
            "--max-length",
            "64",
            "--precision",
            "bf16",
            "--output",
            str(tmp_path / "report"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert {p.name for p in (tmp_path / "report").iterdir()} >= {"report.json", "report.md", "chart.png"}
    assert "ours vs each system" in (layout.model / "README.md").read_text()

    bad = runner.invoke(main, ["train", str(tmp_path / "nothing"), "--model", str(tiny)])
    assert bad.exit_code == 2 and "train_groups.jsonl: not found" in bad.output
    bad = runner.invoke(main, ["evaluate", "--run", str(layout.root), "--dataset", "nope", "--no-bi-encoder"])
    assert bad.exit_code == 2 and "--dataset 'nope'" in bad.output
    bad = runner.invoke(main, ["evaluate", "--no-bi-encoder"])
    assert bad.exit_code == 2 and "give RUN or --run RUN" in bad.output
    bad = runner.invoke(main, ["evaluate", str(layout.root), "--no-fuse", "--fuse", "0.5"])
    assert bad.exit_code == 2 and "--no-fuse and --fuse" in bad.output
