"""`synthrank demo`: the whole pipeline on the bundled MedQuAD slice, offline, in minutes on a laptop CPU.

The LLM stages replay `demo/replies.sqlite`, the request cache of a real run with
Qwen2.5-Coder-0.5B-Instruct on llama.cpp, so the demo needs no LLM server. `--live` calls a real
server instead (the one in $SYNTHRANK_LLM_BASE_URL, else a local llama.cpp server it starts) and
records into the run folder's own cache.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from importlib import resources
from pathlib import Path
from typing import Any

from synthrank.console import error, say
from synthrank.errors import EXIT_BAD_INPUT
from synthrank.run.runner import run_config
from synthrank.run.settings import CorpusConfig, PipelineConfig, RunConfig

# The model name the replies were recorded under: part of every cache key, so it must not change.
DEMO_MODEL = "qwen2.5-coder-0.5b-instruct"


def demo_file(name: str) -> Path:
    return Path(str(resources.files("synthrank").joinpath(f"demo/{name}")))


def demo_config(run_dir: Path, *, live: bool) -> PipelineConfig:
    """The demo's settings: small enough for 2 CPU cores, the same code paths as a real run."""
    from synthrank.devices import Precision, cpu_has_fast_bf16
    from synthrank.llm.config import LLMConfig
    from synthrank.stages.distill import DistillConfig
    from synthrank.stages.evaluate.evaluator import EvalConfig
    from synthrank.stages.generate import GenerateConfig
    from synthrank.stages.judge import JudgeConfig
    from synthrank.stages.mine import MineConfig
    from synthrank.stages.sample import SampleConfig
    from synthrank.stages.train.trainer import TrainConfig

    precision: Precision = "bf16" if cpu_has_fast_bf16() else "auto"
    return PipelineConfig(
        run=RunConfig(dir=run_dir),
        corpus=CorpusConfig(
            path=demo_file("medquad-slice.tar.gz"),
            format="medquad",
            heldout_fraction=0.2,
            heldout_group="focus",
        ),
        # the 80 passages the replies were recorded for, listed: a replay must not depend on how the
        # sampler or the near-duplicate clusters (which decide eligibility) evolve
        sample=SampleConfig(num_passages=80, seed=0, passage_ids=demo_file("sampled_ids.txt")),
        llm=LLMConfig(model=DEMO_MODEL, cache=run_dir / "llm_cache.sqlite", offline=not live, concurrency=1),
        generate=GenerateConfig(n_queries=1, keyword_ratio=0.3, max_tokens=64, temperature=0.0),
        judge=JudgeConfig(top_m=4),
        # Qwen-0.5B grades almost every pair 1 or 3 and hardly ever 0, so "on topic, does not answer"
        # (1) counts as a hard negative here; unjudged candidates of the top 100 fill the groups,
        # drawn at random, minus those within 10% of the positive's similarity (mostly sections of
        # the same page that answer the query too). 15 per query, 7 per group: epochs rotate them.
        mine=MineConfig(
            num_negatives=15,
            min_negatives=7,
            negative_max_grade=1,
            allow_unjudged=True,
            range_max=100,
            relative_margin=0.1,
            sampling="random",
        ),
        # LCE starts from the warm start, so a small learning rate keeps what it learned; short inputs
        # and bf16 where the CPU has fast bf16 kernels (same loss curve, ~1.5x faster). Half of each
        # group's negatives are random passages, as a weak judge leaves the mined ones noisy.
        train=TrainConfig(
            epochs=3,
            random_negative_share=0.5,
            batch_size=4,
            learning_rate=2e-5,
            max_length=160,
            precision=precision,
            checkpoint_every=50,
        ),
        # The warm start, sized for minutes on 2 cores: the new head first learns the bi-encoder's
        # ranking on pseudo-queries cut from the slice (no LLM), then LCE fine-tunes it on the labels.
        distill=DistillConfig(pseudo_queries=256, checkpoint_every=20),
        # with the default fused row (ours with the bi-encoder, the weight picked on the dev set, else
        # the even mix): what a user deploys on top of the first stage
        evaluate=EvalConfig(
            datasets=["indomain"], indomain_max_queries=80, top_k=20, max_length=256, precision=precision
        ),
    )


def run_demo(run_dir: Path, *, live: bool, force: bool, verbose: bool, stop: str | None = None) -> int:
    run_dir.mkdir(parents=True, exist_ok=True)
    config = demo_config(run_dir, live=live)
    cache = run_dir / "llm_cache.sqlite"
    replies = demo_file("replies.sqlite")
    if not live:
        if not replies.is_file():
            error("this install has no recorded demo replies; use `synthrank demo --live`")
            return EXIT_BAD_INPUT
        if not cache.exists():
            shutil.copyfile(replies, cache)
        return run_config(config, stop=stop, force=force, check_llm=False, verbose=verbose)
    server: Any = None
    if not os.environ.get("SYNTHRANK_LLM_BASE_URL"):
        from synthrank.llm.local_server import ServerOptions, free_port, start_server

        say("Starting a local llama.cpp server with Qwen2.5-Coder-0.5B-Instruct ...")
        server, base_url = start_server(ServerOptions(model="qwen0.5b", port=free_port(), threads=2))
        config = config.with_changes(llm=dataclasses.replace(config.llm, base_urls=[base_url]))
    try:
        return run_config(config, stop=stop, force=force, check_llm=True, verbose=verbose)
    finally:
        del server
