"""`synthrank plan`, `run --dry-run`, `run --pilot N`, the dead ends and the checks before any LLM call,
against the fake LLM server playing a degenerate judge (grades 1 or 3 only) on a corpus without
questions; plus the run's saved config for `synthrank train RUN` and the running / stale states."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from llm_support import FakeServer, fake_server_fixture, fake_server_process_fixture  # noqa: F401
from synthrank.errors import ConfigError
from synthrank.records import RunLayout
from synthrank.run.manifest import Manifest, read_manifest, write_manifest
from synthrank.run.pipeline import (
    STAGE_NAMES,
    load_run_config,
    plan,
    save_run_config,
    stage_fingerprints,
    stage_table,
)
from synthrank.run.preview import estimate
from synthrank.run.settings import load_config
from synthrank.stages.judge import JudgeConfig
from synthrank.stages.mine import MineConfig, adapt_to_judge, yield_advice
from test_pipeline import WORDS, synthrank, write_config
from test_training_support import ASPECTS, TOPICS

MINILM = Path("sentence-transformers/all-MiniLM-L6-v2")  # the packaged copy: no download
ADAPT_OFF = {'adapt = "auto"': 'adapt = "off"'}
EMBED_MODEL = 'model = "sentence-transformers/all-MiniLM-L6-v2"  # any'


def write_plain_corpus(path: Path) -> None:
    """Short documents of distinct vocabulary and no question anywhere (a user's own corpus)."""
    rng = random.Random(7)
    with open(path, "w", encoding="utf-8") as fh:
        for t in TOPICS:
            for a in ASPECTS:
                words = " ".join(rng.sample(WORDS, 12))
                text = (
                    f"The {a} of {t} involve {words}. Patients with {t} should ask about {rng.choice(WORDS)}."
                )
                fh.write(json.dumps({"id": f"{t}-{a}", "text": text}) + "\n")


def plain_config(folder: Path, url: str, **edits: str) -> Path:
    write_plain_corpus(folder / "corpus.jsonl")
    keep = {
        'path = "corpus.jsonl"': 'path = "corpus.jsonl"',  # no meta_fields: there are no questions
        "allow_unjudged = false": "allow_unjudged = false",  # the template's default, not the test's
        "price_prompt = 0.0": "price_prompt = 1.0",
        "price_completion = 0.0": "price_completion = 2.0",
    }
    return write_config(folder, url, MINILM, **{**keep, **edits})


def test_plan_and_dry_run_print_calls_tokens_cost_and_call_nothing(
    tmp_path: Path, fake_server: FakeServer
) -> None:
    config_path = plain_config(tmp_path, fake_server.url)
    planned = synthrank("plan", str(config_path), cwd=tmp_path)
    assert planned.returncode == 0, planned.stderr
    for text in ("LLM calls", "prompt tokens", "completion tokens", "cost", "before ingest", "default"):
        assert text in planned.stdout, text
    dry = synthrank("run", str(config_path), "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout == planned.stdout
    assert fake_server.stats()["requests"] == 0
    assert not (tmp_path / "synthrank-run" / "manifests").exists()

    # the numbers: 20 passages x 1 query = 20 generate calls; 90% kept x (5 candidates + source)
    config = load_config(config_path)
    rows, _notes = estimate(config)
    by = {e.stage: e for e in rows}
    assert by["generate"].calls == pytest.approx(20)
    assert by["judge"].calls == pytest.approx(20 * 0.9 * 6)
    # no real questions: testset writes a query for each of synthetic_queries held-out passages and
    # grades its source plus both first stages' top synthetic_judge_top_m; priced, timed, in the total
    ev = config.evaluate
    pool = 1 + 2 * ev.synthetic_judge_top_m
    assert by["testset"].calls == pytest.approx(ev.synthetic_queries * (1 + 0.9 * pool))
    assert by["testset"].cost > 0 and by["testset"].seconds
    assert "LLM-written test queries" in planned.stdout
    for e in (by["generate"], by["judge"]):
        assert e.prompt_tokens > 100 * e.calls  # system prompt, few-shot turns and a passage
        expected = (e.prompt_tokens * 1.0 + e.completion_tokens * 2.0) / 1e6
        assert e.cost == pytest.approx(expected)
        assert e.seconds is not None and "default" in e.rate and "8 at a time" in e.rate

    # a llama.cpp server says it decodes 2 requests at once (/props): the plan times 2 in flight
    fake_server.control(total_slots=2)
    slow = {e.stage: e for e in estimate(config)[0]}
    assert "2 at a time" in slow["judge"].rate and "/props" in slow["judge"].rate
    assert slow["judge"].seconds == pytest.approx(by["judge"].seconds * 4)  # concurrency 8 -> 2
    assert not by["train"].calls and by["train"].runs


def test_pilot_reports_yield_adapts_to_a_degenerate_judge_and_reuses_calls(
    tmp_path: Path, fake_server: FakeServer
) -> None:
    fake_server.control(judge_grades=[1, 3])
    config_path = plain_config(tmp_path, fake_server.url)
    pilot = synthrank("run", str(config_path), "--pilot", "10", cwd=tmp_path)
    assert pilot.returncode == 0, pilot.stdout + pilot.stderr
    out = pilot.stdout
    assert "pilot yield: 10 passages" in out
    assert "judge grades: 1: " in out and "0: " not in out.split("judge grades:")[1].split("\n")[0]
    assert "training groups: " in out and 'adapt = "auto"' in out
    assert "verdict: usable" in out
    layout = RunLayout(tmp_path / "synthrank-run")
    stats = json.loads((layout.root / "pilot" / "mining_stats.json").read_text())
    assert stats["train_groups"] > 0 and stats["adapted"]["changes"]["negative_max_grade"] == [0, 1]
    assert stats["warnings"]
    # the pilot used the run's own cache and sample: the run has ingest and sample done, no pilot
    # passage outside the run's sample
    assert (layout.llm_cache).is_file() and not (layout.root / "pilot" / "llm_cache.sqlite").exists()
    run_sample = set(layout.sampled_ids.read_text().split())
    assert set((layout.root / "pilot" / "corpus" / "sampled_ids.txt").read_text().split()) <= run_sample
    calls = fake_server.stats()["hits"]
    assert calls > 0
    # the pilot embedded the whole corpus: the run's embed stage does not do it again
    from synthrank.stages.retrieve import run_embed

    assert list(run_embed(layout, load_config(config_path).embed)) == ["passages_reused"]

    # with the adaptation off, the same calls (all cached) give no group: exit 1 and the advice
    off = plain_config(tmp_path, fake_server.url, **ADAPT_OFF)
    again = synthrank("run", str(off), "--pilot", "10", cwd=tmp_path)
    assert again.returncode == 1, again.stdout + again.stderr
    assert "the judge never grades <= 0" in again.stdout
    assert "negative_max_grade = 1" in again.stdout
    assert "verdict: no training groups" in again.stdout
    assert fake_server.stats()["hits"] == calls  # nothing asked twice

    # the plan now times the LLM stages with the pilot's measured rate
    planned = synthrank("plan", str(config_path), cwd=tmp_path)
    assert planned.returncode == 0, planned.stderr
    assert "measured" in planned.stdout


def test_mine_with_no_group_fails_with_exit_1_and_says_what_to_change(
    tmp_path: Path, fake_server: FakeServer
) -> None:
    fake_server.control(judge_grades=[1, 3])
    config_path = plain_config(tmp_path, fake_server.url, **ADAPT_OFF)
    result = synthrank("run", str(config_path), cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "mine: 0 training groups" in result.stderr
    assert "negative_max_grade = 1" in result.stderr
    assert "Traceback" not in result.stderr
    layout = RunLayout(tmp_path / "synthrank-run")
    mine = read_manifest(layout, "mine")
    assert mine is not None and mine.status == "failed"
    assert read_manifest(layout, "train") is None  # nothing after the dead end started
    # the stage command says the same, with the same exit code; its default adapts to the judge
    alone = synthrank(
        "mine", "--run", str(layout.root), "--num-negatives", "3", "--adapt", "off", cwd=tmp_path
    )
    assert alone.returncode == 1 and "0 training groups" in alone.stderr
    adapted = synthrank("mine", "--run", str(layout.root), "--num-negatives", "3", cwd=tmp_path)
    assert adapted.returncode == 0, adapted.stderr
    assert "weak-judge recipe applied" in adapted.stderr and json.loads(adapted.stdout)["train_groups"] > 0


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"positive_min_grade = 2": "positive_min_grade = 5"}, "[mine] positive_min_grade"),
        ({"\nk = 100": "\nk = 0"}, "[retrieve] k"),
        ({"chunk_size = 16384": "chunk_size = 0"}, "[embed] chunk_size"),
        ({"range_min = 0": "range_min = -1"}, "[mine] range_min"),
        ({"connectivity = 16": "connectivity = 1"}, "[index] connectivity"),
        (
            {EMBED_MODEL: EMBED_MODEL.replace("sentence-transformers/all-MiniLM-L6-v2", "nobody/no-such")},
            "[embed] model",
        ),
    ],
)
def test_bad_values_exit_2_naming_the_key_before_any_llm_call(
    tmp_path: Path, fake_server: FakeServer, edit: dict[str, str], message: str
) -> None:
    config_path = plain_config(tmp_path, fake_server.url, **edit)
    result = synthrank("run", str(config_path), cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert fake_server.stats()["requests"] == 0
    assert not (tmp_path / "synthrank-run" / "manifests").exists()


def test_adapt_only_for_a_degenerate_judge() -> None:
    cfg = MineConfig()
    strong, changes = adapt_to_judge(cfg, Counter({"0": 50, "1": 20, "2": 10, "3": 10}))
    assert strong == cfg and changes == {}
    weak, changes = adapt_to_judge(cfg, Counter({"1": 60, "3": 40}))
    assert (weak.negative_max_grade, weak.allow_unjudged, weak.sampling) == (1, True, "random")
    assert (weak.relative_margin, weak.range_max) == (0.1, 100)
    assert "0 of 100 pairs" in changes["reason"]
    # options a user set are kept; "off" mines as written
    mine_own, changes = adapt_to_judge(MineConfig(absolute_margin=0.05, range_max=30), Counter({"3": 9}))
    assert mine_own.relative_margin is None and mine_own.range_max == 30
    assert adapt_to_judge(MineConfig(adapt="off"), Counter({"3": 9})) == (MineConfig(adapt="off"), {})
    with pytest.raises(ConfigError, match="adapt"):
        MineConfig(adapt="sometimes").validate()  # type: ignore[arg-type]


def test_yield_advice_names_the_setting() -> None:
    stats: dict[str, Any] = {
        "config": {"negative_max_grade": 0, "positive_min_grade": 2},
        "queries_in": 10,
        "dropped": {"source_judged_irrelevant": 4, "too_few_negatives": 5, "no_positive": 0},
        "grade_distribution": {"1": 30, "3": 20},
    }
    advice = " ".join(yield_advice(stats))
    assert "never grades <= 0" in advice and "negative_max_grade = 1" in advice
    assert "40% of queries dropped because the judge graded their own source" in advice
    assert "50% of queries dropped with fewer than min_negatives" in advice and "min_negatives" in advice


def _done(layout: RunLayout, stage: str, fingerprint: str, at: float) -> None:
    write_manifest(layout, Manifest(stage, "done", fingerprint, at, at + 1, 1.0))


def test_a_newer_upstream_makes_later_stages_stale(tmp_path: Path) -> None:
    config_path = tmp_path / "synthrank.toml"
    config_path.write_text(f'[run]\ndir = "run"\n[train]\nmodel = "{MINILM}"\n')
    config = load_config(config_path)
    layout = RunLayout(config.run.dir)
    prints = stage_fingerprints(config)
    for i, name in enumerate(STAGE_NAMES):
        _done(layout, name, prints[name], 1000.0 + 10 * i)
    assert not any(run for _, run in plan(config))
    _done(layout, "train", prints["train"], 5000.0)  # `synthrank train RUN` retrained
    runs = {stage.name: run for stage, run in plan(config)}
    assert [n for n in STAGE_NAMES if runs[n]] == list(STAGE_NAMES[STAGE_NAMES.index("train") + 1 :])
    states = {row["stage"]: row["state"] for row in stage_table(layout)}
    assert states["train"] == "done" and states["evaluate"] == "stale" and states["report"] == "stale"


def test_a_stage_revision_reruns_that_stage_and_later_ones_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outputs made when the stage's code meant something else by the same settings are not skipped."""
    import dataclasses

    from synthrank.run import pipeline

    config_path = tmp_path / "synthrank.toml"
    config_path.write_text(f'[run]\ndir = "run"\n[train]\nmodel = "{MINILM}"\n')
    config = load_config(config_path)
    layout = RunLayout(config.run.dir)
    old = {s.name: dataclasses.replace(s, revision=0) for s in pipeline.STAGES}
    monkeypatch.setattr(pipeline, "STAGES", tuple(old.values()))
    before = stage_fingerprints(config)
    for i, name in enumerate(STAGE_NAMES):
        _done(layout, name, before[name], 1000.0 + 10 * i)
    monkeypatch.undo()
    assert next(s for s in pipeline.STAGES if s.name == "distill").revision > 0
    runs = {stage.name: run for stage, run in plan(config)}
    assert [n for n in STAGE_NAMES if runs[n]] == ["distill", "train", "evaluate", "report"]


def test_status_shows_a_running_stage_and_its_spend(tmp_path: Path) -> None:
    layout = RunLayout(tmp_path / "run")
    now = time.time()
    write_manifest(layout, Manifest("judge", "running", "x", now - 5, now - 5, 0.0, {"pid": os.getpid()}))
    write_manifest(layout, Manifest("generate", "running", "x", now - 9, now - 9, 0.0, {"pid": 2**22 + 7}))
    from synthrank.llm.cache import ResponseCache

    with ResponseCache(layout.llm_cache) as cache:
        cache.put("a", "chat", {"usage": {"prompt_tokens": 1000, "completion_tokens": 10}})
    (layout.root / "config.json").write_text(
        json.dumps({"sections": {"llm": {"price_prompt": 2.0, "price_completion": 4.0}}})
    )
    rows = {row["stage"]: row for row in stage_table(layout)}
    assert rows["judge"]["state"] == "running" and rows["judge"]["seconds"] >= 5
    assert rows["judge"]["counts"]["calls"] == 1
    assert rows["judge"]["cost"] == pytest.approx((1000 * 2.0 + 10 * 4.0) / 1e6)
    assert rows["generate"]["state"] == "partial"  # its process is gone
    result = CliRunner().invoke(_cli(), ["status", str(layout.root)])
    assert result.exit_code == 0 and "running" in result.output and "0.0020" in result.output


def _cli() -> Any:
    from synthrank.cli import main

    return main


def test_measured_judge_pairs_leave_out_those_the_source_gate_skipped(tmp_path: Path) -> None:
    from synthrank.run.preview import _measured_pairs_per_query

    layout = RunLayout(tmp_path / "run")
    counts = {"pairs": 60, "source_gated_queries": 4, "source_gated_pairs": 20}
    write_manifest(layout, Manifest("judge", "done", "x", 1.0, 2.0, 1.0, counts))
    (layout.root / "filter_stats.json").write_text(json.dumps({"kept": 10}))
    # 40 pairs judged (or cached) for 10 queries
    assert _measured_pairs_per_query(layout, JudgeConfig(top_m=5)) == 4.0


def test_measured_judge_pairs_follow_a_changed_top_m(tmp_path: Path) -> None:
    """A pilot graded the top 20; the run now grades the top 5: a quarter of the calls, not as many."""
    from synthrank.run.preview import _measured_pairs_per_query

    layout = RunLayout(tmp_path / "run")
    write_manifest(layout, Manifest("judge", "done", "x", 1.0, 2.0, 1.0, {"pairs": 200, "top_m": 20}))
    (layout.root / "filter_stats.json").write_text(json.dumps({"kept": 10}))
    assert _measured_pairs_per_query(layout, JudgeConfig(top_m=20)) == 20.0
    assert _measured_pairs_per_query(layout, JudgeConfig(top_m=5)) == 5.0
    # an older run that did not record its top_m: never more than the current top_m can judge
    write_manifest(layout, Manifest("judge", "done", "x", 1.0, 2.0, 1.0, {"pairs": 200}))
    assert _measured_pairs_per_query(layout, JudgeConfig(top_m=5)) == 6.0


def test_status_loads_no_heavy_module(tmp_path: Path) -> None:
    """`status` answers in well under a second: the CLI and the status path import no numpy or torch."""
    layout = RunLayout(tmp_path / "run")
    write_manifest(layout, Manifest("ingest", "done", "x", 1.0, 2.0, 1.0, {"passages": 3}))
    code = (
        "import sys; from click.testing import CliRunner; from synthrank.cli import main; "
        f"r = CliRunner().invoke(main, ['status', {str(layout.root)!r}]); assert r.exit_code == 0, r.output; "
        "print(sorted(m for m in ('numpy', 'torch', 'transformers', 'httpx', 'synthrank._native') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_train_reads_the_run_config_in_both_forms_and_records_the_stage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import synthrank.stages.train.trainer as trainer

    config_path = tmp_path / "synthrank.toml"
    config_path.write_text(
        f'[run]\ndir = "run"\n[train]\nmodel = "{MINILM}"\nlearning_rate = 3e-5\ngroup_size = 4\n'
    )
    config = load_config(config_path)
    save_run_config(config)
    run_dir = config.run.dir
    seen: list[Any] = []
    monkeypatch.setattr(trainer, "run_train", lambda layout, cfg, **kw: seen.append(cfg) or {"steps": 1})

    for args in (["train", str(run_dir), "--epochs", "2"], ["train", "--run", str(run_dir), "--epochs", "2"]):
        result = CliRunner().invoke(_cli(), args)
        assert result.exit_code == 0, result.output
    assert [(c.learning_rate, c.group_size, c.epochs) for c in seen] == [(3e-5, 4, 2)] * 2
    manifest = read_manifest(RunLayout(run_dir), "train")
    assert manifest is not None and manifest.status == "done"
    loaded = load_run_config(run_dir)
    assert loaded is not None and loaded.train.learning_rate == 3e-5
    assert stage_fingerprints(loaded) == stage_fingerprints(config)


def test_plan_bounds_the_passages_of_a_small_corpus_by_its_size_on_disk(tmp_path: Path) -> None:
    from synthrank.stages.ingest.ingest import run_ingest

    fixture = Path(__file__).parent / "fixtures" / "python-docs"
    config_path = tmp_path / "docs.toml"
    synthrank("init", str(config_path), "--corpus", str(fixture), cwd=tmp_path)
    config = load_config(config_path)
    rows, notes = estimate(config)
    generate = next(e for e in rows if e.stage == "generate")
    (note,) = [n for n in notes if n.startswith("passages:")]
    assert "estimated from the corpus's 68 KB on disk" in note
    bound = int(note.split("about ")[1].split()[0])
    assert bound < config.sample.num_passages  # 1000: the bound, not the setting, is planned
    assert bound <= generate.calls <= bound * config.generate.n_queries  # 1 or 2 requests a passage
    counts = run_ingest(RunLayout(tmp_path / "run"), config.corpus, fixture)
    trainable = counts["passages"] - counts["withheld_passages"]
    assert trainable <= bound <= 2 * trainable  # an upper bound, and a useful one


def test_plan_times_embedding_warm_start_and_training_from_the_measured_rate(tmp_path: Path) -> None:
    """distill and train are timed as steps x pair-tokens a step at the rate the folder's last
    training reached, embed as passages at the rate of the folder's (or pilot's) last embed; before
    one, at a per-core default scaled by the model's size."""
    from synthrank.run.compute_time import (
        DEFAULT_CPU_EMBED_TOKENS_PER_CORE,
        DEFAULT_CPU_RATE_PER_CORE,
        embed_time,
        model_scale,
        optimizer_steps,
        training_estimates,
    )
    from synthrank.stages.train.trainer import TrainConfig
    from test_training_support import tiny_model

    tiny = tiny_model(tmp_path / "tiny")
    assert model_scale(str(tiny)) == pytest.approx(2 * 32**2 / (6 * 384**2))
    assert model_scale(str(MINILM)) == pytest.approx(1.0)
    assert model_scale(str(tmp_path / "nothing")) is None
    assert optimizer_steps(TrainConfig(batch_size=8, epochs=2), 100) == 26
    assert optimizer_steps(TrainConfig(max_steps=7), 100) == 7

    config_path = write_config(tmp_path, "http://127.0.0.1:9/v1", MINILM)
    config = load_config(config_path)
    config.train.device = "cpu"
    config.distill = dataclasses.replace(config.distill, enabled="on", max_steps=50)
    layout = RunLayout(config.run.dir)
    times = training_estimates(config, 100.0)
    cores = len(os.sched_getaffinity(0))
    per_step = config.distill.batch_size * config.distill.list_size * config.distill.max_length
    assert times["distill"].steps == 50 and "default" in times["distill"].rate
    assert times["distill"].seconds == pytest.approx(50 * per_step / (DEFAULT_CPU_RATE_PER_CORE * cores))
    assert times["train"].seconds is None and "after a pilot" in times["train"].rate

    # a pilot's mine kept 1 group for 2 queries; the last training ran at 1,000 pair-tokens/s
    write_manifest(
        RunLayout(layout.root / "pilot"),
        Manifest("mine", "done", "x", 1.0, 2.0, 1.0, {"queries_in": 20, "train_groups": 10}),
    )
    rate = {"pair_tokens_per_second": 1000.0}
    write_manifest(layout, Manifest("distill", "done", "x", 1.0, 2.0, 1.0, rate))
    times = training_estimates(config, 100.0)
    assert times["distill"].seconds == pytest.approx(50 * per_step / 1000.0)
    tc = config.train
    steps = math.ceil(50 / (tc.batch_size * tc.grad_accumulation)) * tc.epochs
    assert times["train"].steps == steps and "measured" in times["train"].rate
    per_train_step = tc.batch_size * tc.group_size * tc.max_length
    assert times["train"].seconds == pytest.approx(steps * per_train_step / 1000.0)

    # without max_steps: one pass over the pseudo-queries, plus the LLM's queries when they count
    for synthetic, steps in ((False, 10), (True, 23)):
        config.distill = dataclasses.replace(
            config.distill, max_steps=0, pseudo_queries=80, batch_size=8, synthetic_queries=synthetic
        )
        assert training_estimates(config, 100.0)["distill"].steps == steps

    # embed: timed once ingest has counted the passages
    assert embed_time(config) is None
    write_manifest(layout, Manifest("ingest", "done", "x", 1.0, 2.0, 1.0, {"passages": 1000}))
    config.embed = dataclasses.replace(config.embed, device="cpu")
    tokens = config.corpus.passage_tokens
    default = embed_time(config)
    assert default is not None and "default" in default.rate
    assert default.seconds == pytest.approx(1000 * tokens / (DEFAULT_CPU_EMBED_TOKENS_PER_CORE * cores))
    pilot = RunLayout(layout.root / "pilot")
    write_manifest(pilot, Manifest("embed", "done", "x", 1.0, 2.0, 1.0, {"passages_per_second": 10.0}))
    assert embed_time(config).seconds == pytest.approx(100.0)  # type: ignore[union-attr]
    # the pilot handed its passage embeddings to the run: nothing to embed but the queries
    (layout.embeddings).mkdir(parents=True)
    (layout.embeddings / "passages.npy").write_bytes(b"")
    layout.embeddings_manifest.write_text(json.dumps({"passages": {"count": 1000}}))
    assert embed_time(config).seconds == 0.0  # type: ignore[union-attr]

    # by default a trained reranker (the tiny sequence classifier) starts LCE: no warm start to time
    config.train.model = str(tiny)
    config.distill = dataclasses.replace(config.distill, enabled="auto")
    assert set(training_estimates(config, 100.0)) == {"train"}
