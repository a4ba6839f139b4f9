"""Every config check runs when `synthrank run` loads the file: a bad value of any key exits 2 naming
`[section] key` (and its line) before any stage starts, so nothing is spent on a run that would fail."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from synthrank.cli import main
from synthrank.run.settings import SECTIONS, section_class

# A value outside its range for each key that has a range check (the type alone does not reject it).
OUT_OF_RANGE: dict[tuple[str, str], Any] = {
    ("corpus", "max_length"): 8,
    ("corpus", "overlap"): -1,
    ("corpus", "heldout_fraction"): 1.0,
    ("corpus", "batch_size"): 0,
    ("corpus", "query_budget"): -1,
    ("corpus", "special_tokens"): -1,
    ("corpus", "near_dup_threshold"): 1.5,
    ("corpus", "num_perm"): 0,
    ("corpus", "shingle_size"): 0,
    ("corpus", "seed"): -1,
    ("sample", "num_passages"): 0,
    ("llm", "base_urls"): ["not-a-url"],
    ("llm", "concurrency"): 0,
    ("llm", "rest_after"): 0,
    ("llm", "timeout"): 0,
    ("llm", "backoff_base"): 0,
    ("llm", "backoff_max"): 0,
    ("llm", "rest_seconds"): 0,
    ("llm", "retry_budget_s"): 0,
    ("llm", "rpm"): 0,
    ("llm", "tpm"): 0,
    ("llm", "max_cost"): 0,
    ("llm", "retries"): -1,
    ("llm", "bad_reply_retries"): -1,
    ("llm", "price_prompt"): -1,
    ("llm", "price_completion"): -1,
    ("llm", "interrupt_grace_s"): -1,
    ("llm", "max_failure_rate"): 1.5,
    ("generate", "n_queries"): 0,
    ("generate", "keyword_ratio"): 1.5,
    ("generate", "few_shot"): -1,
    ("filter", "min_words"): 0,
    ("filter", "max_words"): 0,
    ("filter", "copy_ngram"): 0,
    ("filter", "copy_overlap"): 0,
    ("filter", "near_duplicate_threshold"): 0,
    ("embed", "batch_size"): 0,
    ("embed", "chunk_size"): 0,
    ("embed", "max_seq_length"): 0,
    ("index", "connectivity"): 1,
    ("index", "expansion_add"): 0,
    ("index", "expansion_search"): 0,
    ("retrieve", "k"): 0,
    ("retrieve", "recall_sample"): -1,
    ("judge", "top_m"): -1,
    ("judge", "few_shot"): -1,
    ("judge", "top_logprobs"): 21,
    ("judge", "list_size"): 0,
    ("judge", "passage_max_tokens"): 0,
    ("judge", "skip_margin"): -0.1,
    ("judge", "source_min_grade"): 4,
    ("judge", "temperature"): -0.5,
    ("judge", "max_tokens"): 0,
    ("judge", "max_passage_chars"): 0,
    ("judge", "workers"): 0,
    ("mine", "positive_min_grade"): 5,
    ("mine", "negative_max_grade"): 3,
    ("mine", "max_positives"): 0,
    ("mine", "num_negatives"): 0,
    ("mine", "min_negatives"): -1,
    ("mine", "range_min"): -1,
    ("mine", "range_max"): 0,
    ("mine", "absolute_margin"): 1.0,
    ("mine", "relative_margin"): 1.0,
    ("mine", "dev_fraction"): 1.0,
    ("distill", "pseudo_queries"): -1,
    ("distill", "list_size"): 1,
    ("distill", "random_candidates"): -1,
    ("distill", "temperature"): 0,
    ("distill", "min_sentence_words"): 0,
    ("distill", "max_sentence_words"): 0,
    ("distill", "batch_size"): 0,
    ("distill", "epochs"): 0,
    ("distill", "max_steps"): -1,
    ("distill", "max_length"): 0,
    ("distill", "checkpoint_every"): -1,
    ("train", "batch_size"): 0,
    ("train", "grad_accumulation"): 0,
    ("train", "epochs"): 0,
    ("train", "max_length"): 0,
    ("train", "max_query_tokens"): 256,
    ("train", "distill_weight"): -1,
    ("train", "distill_temperature"): 0,
    ("train", "group_size"): 1,
    ("train", "random_negative_share"): 1.5,
    ("train", "max_steps"): -1,
    ("train", "learning_rate"): -1e-5,
    ("train", "head_learning_rate"): -1e-5,
    ("train", "weight_decay"): -0.1,
    ("train", "warmup_ratio"): 1.5,
    ("train", "max_grad_norm"): -1,
    ("train", "cpu_threads"): -1,
    ("train", "checkpoint_every"): -1,
    ("train", "keep_checkpoints"): 0,
    ("train", "eval_every"): -1,
    ("train", "early_stopping_patience"): -1,
    ("train", "dev_top_k"): 0,
    ("train", "dev_max_queries"): -1,
    ("train", "dev_min_queries"): -1,
    ("train", "seed"): -1,
    ("mine", "seed"): -1,
    ("index", "threads"): -1,
    ("retrieve", "exact_below"): -1,
    ("retrieve", "threads"): -1,
    ("retrieve", "seed"): -1,
    ("evaluate", "top_k"): 0,
    ("evaluate", "max_length"): 0,
    ("evaluate", "max_query_tokens"): 0,
    ("evaluate", "indomain_max_queries"): -1,
    ("evaluate", "fuse_min_dev_queries"): -1,
    ("evaluate", "fuse_pseudo_queries"): -1,
    ("evaluate", "seed"): -1,
    ("distill", "seed"): -1,
    ("generate", "max_tokens"): 0,
    ("generate", "max_passage_chars"): 0,
    ("generate", "workers"): 0,
    ("generate", "temperature"): -0.1,
    ("filter", "shingle_size"): 0,
    ("sample", "min_tokens"): -1,
    ("sample", "max_tokens"): -1,
    ("sample", "seed"): -1,
    ("distill", "learning_rate"): -1e-4,
    ("distill", "head_learning_rate"): -1e-3,
    ("evaluate", "fuse_weights"): [1.5],
    ("evaluate", "synthetic_queries"): -1,
    ("evaluate", "synthetic_judge_top_m"): 0,
}


def _admits_text(annotation: Any) -> bool:
    """Whether a TOML string is a value of this type (a Literal admits only its own strings)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_admits_text(arg) for arg in typing.get_args(annotation))
    return annotation in (str, Path)


def _keys() -> Iterator[tuple[str, str, Any]]:
    for section in SECTIONS:
        options = section_class(section)
        hints = typing.get_type_hints(options)
        for field in dataclasses.fields(options):
            yield section, field.name, hints[field.name]


def _wrong_type(annotation: Any) -> Any:
    # a number where text belongs; elsewhere text that is no number, flag, list or listed choice
    return 5 if _admits_text(annotation) else "not-a-choice"


BAD_VALUES = [(section, key, _wrong_type(annotation)) for section, key, annotation in _keys()] + [
    (section, key, value) for (section, key), value in OUT_OF_RANGE.items()
]


def _toml(value: Any) -> str:
    return json.dumps(value)  # the values above are written the same in JSON and TOML


@pytest.mark.parametrize(("section", "key", "value"), BAD_VALUES, ids=lambda v: str(v))
def test_a_bad_value_exits_2_naming_the_key_before_any_stage(
    tmp_path: Path, section: str, key: str, value: Any
) -> None:
    run_dir = tmp_path / "run"
    lines = ["[run]"]
    if (section, key) != ("run", "dir"):
        lines.append(f"dir = {_toml(run_dir.as_posix())}")
    if section != "run":
        lines.append(f"[{section}]")
    lines.append(f"{key} = {_toml(value)}")
    config = tmp_path / "synthrank.toml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")

    result = CliRunner().invoke(main, ["run", str(config), "--skip-llm-check"])

    assert result.exit_code == 2, result.output
    assert f"{config}:{len(lines)}: [{section}] {key}:" in result.output
    assert "Traceback" not in result.output
    assert not run_dir.exists()  # no stage started: not even the run folder was made


def test_every_out_of_range_entry_names_a_real_key() -> None:
    keys = {(section, key) for section, key, _ in _keys()}
    assert set(OUT_OF_RANGE) <= keys, set(OUT_OF_RANGE) - keys
    assert {section for section, _ in OUT_OF_RANGE} == set(SECTIONS) - {"run"}


NAN_KEYS = [(section, key) for (section, key), value in OUT_OF_RANGE.items() if isinstance(value, float)]


@pytest.mark.parametrize(("section", "key"), NAN_KEYS, ids=lambda v: str(v))
def test_nan_is_out_of_every_range(tmp_path: Path, section: str, key: str) -> None:
    """TOML has `nan`; a range check must not let it through to a stage (a NaN learning rate
    would train a model of NaNs)."""
    config = tmp_path / "synthrank.toml"
    config.write_text(f"[run]\ndir = {_toml((tmp_path / 'run').as_posix())}\n[{section}]\n{key} = nan\n")

    result = CliRunner().invoke(main, ["run", str(config), "--skip-llm-check"])

    assert result.exit_code == 2, result.output
    assert f"{config}:4: [{section}] {key}: must be" in result.output
