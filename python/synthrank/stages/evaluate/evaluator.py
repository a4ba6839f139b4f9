"""Rerank the same first-stage top-k lists with each system and measure quality and speed.

Systems: the first-stage order itself, a bi-encoder's cosine similarity, any number of
cross-encoders (base and fine-tuned), and each cross-encoder fused with the bi-encoder.
Cross-encoder pairs are scored longest-first in length buckets, each batch sized to a token budget,
so short pairs run in big batches and long ones fit (`synthrank.scoring`, shared with the trainer).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from synthrank.config import at_least
from synthrank.devices import PRECISIONS, Precision, pick_device
from synthrank.errors import ConfigError, EmptyOutputError, InvalidArgumentError
from synthrank.fusion import BiEncoder, fuse_scores, write_fusion
from synthrank.models import DEFAULT_EMBEDDER, RUN_EMBEDDER
from synthrank.records import RunLayout
from synthrank.scoring import load_cross_encoder, rerank_with_cross_encoder
from synthrank.scoring import score_pairs as score_pairs  # tests import it from here
from synthrank.stages.evaluate.datasets import (
    DEV_NAME,
    TREC_DL_19_NAMES,
    EvalDataset,
    load_beir,
    load_dev,
    load_indomain_any,
    load_trec_dl19,
)
from synthrank.stages.evaluate.metrics import METRICS, evaluate, mean, paired_comparison
from synthrank.stages.evaluate.pseudo_dev import load_pseudo_dev

log = logging.getLogger(__name__)


def load_bi_encoder(layout: RunLayout, name: str, device: torch.device) -> BiEncoder | None:
    """The bi-encoder row's model; None for "". "embed" is the start model the run retrieved with,
    with the prompts and input length recorded in RUN/embeddings/manifest.json: the row a reranker
    must beat, and the first stage it is fused with (an E5 model scored without its "query: "
    prompt would understate it)."""
    if not name:
        return None
    settings: dict[str, Any] = {"model": name}
    if name == RUN_EMBEDDER:
        recorded = None
        if layout.embeddings_manifest.is_file():
            recorded = json.loads(layout.embeddings_manifest.read_text(encoding="utf-8")).get("settings")
        if not recorded:
            log.info("%s: no embeddings of the run; the bi-encoder row is %s", layout.root, DEFAULT_EMBEDDER)
        settings = recorded or {"model": DEFAULT_EMBEDDER}
    return BiEncoder.load(settings, device, "[evaluate] bi_encoder")


def rerank_with_bi_encoder(
    bi: BiEncoder, ds: EvalDataset, batch_size: int = 64
) -> tuple[dict[str, dict[str, float]], float]:
    """(run, pairs per second) for a sentence-transformers bi-encoder: cosine of the two embeddings."""
    qids = list(ds.candidates)
    pids = sorted({d for c in ds.candidates.values() for d in c})
    started = time.perf_counter()
    q_emb = bi.encode([ds.queries[q] for q in qids], queries=True, batch_size=batch_size)
    p_emb = bi.encode([ds.passages[p] for p in pids], queries=False, batch_size=batch_size)
    elapsed = time.perf_counter() - started
    row = {p: i for i, p in enumerate(pids)}
    run = {
        q: {d: float(np.dot(q_emb[i], p_emb[row[d]])) for d in ds.candidates[q]} for i, q in enumerate(qids)
    }
    return run, ds.n_pairs / elapsed if elapsed > 0 else float("inf")


def fuse_runs(
    cross: dict[str, dict[str, float]], first: dict[str, dict[str, float]], weight: float
) -> dict[str, dict[str, float]]:
    """`fuse_scores` over every query of two runs: the fused ranker `FusedReranker` serves."""
    fused: dict[str, dict[str, float]] = {}
    for q, scores in cross.items():
        docs = list(scores)
        mixed = fuse_scores([scores[d] for d in docs], [first[q][d] for d in docs], weight)
        fused[q] = dict(zip(docs, mixed.tolist(), strict=True))
    return fused


@dataclass
class SystemResult:
    """One system on one data set: mean and per-query metrics, speed."""

    system: str
    dataset: str
    kind: str  # "first-stage" | "bi-encoder" | "cross-encoder" | "fused"
    means: dict[str, float]
    per_query: dict[str, dict[str, float]] = field(repr=False)
    pairs_per_second: float | None = None
    seconds: float = 0.0
    run: dict[str, dict[str, float]] = field(default_factory=dict, repr=False)


def score_run(
    system: str,
    kind: str,
    ds: EvalDataset,
    run: dict[str, dict[str, float]],
    pps: float | None,
    seconds: float,
) -> SystemResult:
    per_query = evaluate(ds.qrels, run, METRICS, ds.relevance_level)
    return SystemResult(
        system, ds.name, kind, {m: mean(v) for m, v in per_query.items()}, per_query, pps, seconds, run
    )


def evaluate_cross_encoder(
    name: str, path: str | Path, ds: EvalDataset, device: torch.device, cfg: EvalConfig
) -> SystemResult:
    model, tokenizer = load_cross_encoder(str(path), device)
    started = time.perf_counter()
    run, pps = rerank_with_cross_encoder(
        model,
        tokenizer,
        ds,
        max_length=cfg.max_length,
        max_query_tokens=cfg.max_query_tokens,
        precision=cfg.precision,
    )
    return score_run(name, "cross-encoder", ds, run, pps, time.perf_counter() - started)


@dataclass
class EvalConfig:
    """Options of the evaluate stage (the `[evaluate]` table of synthrank.toml).

    models: cross-encoders to compare, "label=path" or a path; the last one is the candidate that
    every other system is tested against. Empty = the run's fine-tuned `model/`.
    fuse_weights: also rank by each cross-encoder fused with the bi-encoder (`fuse_runs`), one row
    "label+bi@w" per weight; the last model at the last weight is then the candidate. "auto" (the
    default): one weight per model, the best of `FUSE_GRID` on the run's synthetic dev set (never a
    test set), on pseudo-queries cut from training passages where that set is smaller than
    `fuse_min_dev_queries`, the even mix 0.5 where both are; no fusion without a bi-encoder row or
    when the dev set is among the data sets. [] = none.
    datasets: "indomain" (held-out real questions of the run, else its synthetic test set `test/`),
    "trec-dl-19", or a BEIR folder path; empty = no evaluation.
    synthetic_queries, synthetic_judge_top_m: size of the synthetic test set the testset stage
    builds when the corpus has no real questions, and the depth judged per first stage.
    """

    models: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=lambda: ["indomain"])
    bi_encoder: str = RUN_EMBEDDER  # "embed": the run's [embed] model and prompts; or a model; "" = none
    first_stage_row: bool = True
    top_k: int = 100
    max_length: int = 512
    max_query_tokens: int = 64
    device: str = "auto"
    precision: Precision = "auto"  # auto: bf16 on GPU, fp32 on CPU
    trec_dl_archive: str = "trec-dl-19.tar.gz"  # for datasets = ["trec-dl-19"]
    indomain_max_queries: int = 0  # 0 = every held-out question
    beir_split: str = "test"
    seed: int = 0
    output: str = ""  # report folder; "" = the run folder's eval/
    fuse_weights: list[float] | Literal["auto"] = "auto"
    synthetic_queries: int = 100  # 0 = never build a synthetic test set
    synthetic_judge_top_m: int = 10
    fuse_min_dev_queries: int = 30  # "auto" with fewer dev queries picks on pseudo-queries instead
    fuse_pseudo_queries: int = 100  # how many; 0 = the even mix 0.5 instead

    def __post_init__(self) -> None:
        at_least(self, "evaluate", 1, "top_k", "max_length", "max_query_tokens", "synthetic_judge_top_m")
        at_least(
            self,
            "evaluate",
            0,
            "indomain_max_queries",
            "fuse_min_dev_queries",
            "fuse_pseudo_queries",
            "seed",
            "synthetic_queries",
        )
        if isinstance(self.fuse_weights, str):
            if self.fuse_weights != "auto":
                raise ConfigError(
                    f'a list of weights or "auto", got {self.fuse_weights!r}',
                    section="evaluate",
                    key="fuse_weights",
                )
        else:
            for w in self.fuse_weights:
                if not 0.0 <= w <= 1.0:
                    raise ConfigError(
                        f"each weight must be in [0, 1], got {w}", section="evaluate", key="fuse_weights"
                    )
        if isinstance(self.fuse_weights, list) and self.fuse_weights and not self.bi_encoder:
            raise ConfigError(
                "needs the bi-encoder row (bi_encoder is empty)", section="evaluate", key="fuse_weights"
            )
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"one of {', '.join(PRECISIONS)}, got {self.precision!r}", section="evaluate", key="precision"
            )


FUSE_GRID = tuple(i / 10 for i in range(11))  # the weights `fuse_weights = "auto"` chooses from
PICKED_ON_DEV = " (picked on dev)"


def fused_label(label: str, weight: float, picked: bool = False) -> str:
    return f"{label}+bi@{weight:g}" + (PICKED_ON_DEV if picked else "")


def parse_model_spec(spec: str) -> tuple[str, str]:
    """ "label=path" -> (label, path); a bare path is labelled by its folder name."""
    label, sep, path = spec.partition("=")
    if sep and label and not Path(spec).exists():
        return label, path
    return Path(spec).name or spec, spec


def load_dataset(spec: str, layout: RunLayout, cfg: EvalConfig) -> EvalDataset:
    if spec == "indomain":
        return load_indomain_any(layout, cfg.top_k, cfg.indomain_max_queries or None, cfg.seed)
    if spec == DEV_NAME:
        return load_dev(layout, cfg.top_k, "the dev data set reranks it")
    if spec in TREC_DL_19_NAMES:
        return load_trec_dl19(cfg.trec_dl_archive, cfg.top_k)
    if Path(spec).is_dir():
        return load_beir(spec, cfg.beir_split, cfg.top_k)
    raise InvalidArgumentError(f"--dataset {spec!r}: use indomain, dev, trec-dl-19 or a BEIR folder path")


def fusion_dev_set(layout: RunLayout, cfg: EvalConfig) -> tuple[EvalDataset | None, str, int]:
    """(the queries to pick the fusion weight on, how they were made, how many synthetic dev queries
    the run has): its synthetic dev set; pseudo-queries where that has fewer than
    `fuse_min_dev_queries`; None (the even mix) where neither has enough."""
    try:
        dev = load_dev(layout, cfg.top_k, '[evaluate] fuse_weights = "auto" picks the fusion weight on it')
    except EmptyOutputError as e:
        dev, why = None, str(e)
    n_dev = len(dev.candidates) if dev else 0
    if dev is not None:
        if n_dev >= cfg.fuse_min_dev_queries:
            return dev, "auto", n_dev
        why = (
            f"{layout.dev}: {n_dev} dev queries, fewer than [evaluate] fuse_min_dev_queries "
            f"({cfg.fuse_min_dev_queries})"
        )
    if cfg.fuse_pseudo_queries:
        pseudo = load_pseudo_dev(layout, cfg.top_k, cfg.fuse_pseudo_queries, cfg.seed)
        if len(pseudo.candidates) >= cfg.fuse_min_dev_queries:
            log.warning(
                "%s; the fusion weight is picked on %d pseudo-queries instead", why, len(pseudo.candidates)
            )
            return pseudo, "pseudo", n_dev
        why += f"; only {len(pseudo.candidates)} pseudo-queries"
    log.warning("%s: too few to pick a fusion weight on; the even mix 0.5 (fixed in advance) is used", why)
    return None, "even", n_dev


def pick_fuse_weights(
    layout: RunLayout,
    models: list[tuple[str, str]],
    bi_encoder: BiEncoder,
    device: torch.device,
    cfg: EvalConfig,
) -> dict[str, Any]:
    """Per model, the weight of `FUSE_GRID` with the best mean nDCG@10 on the run's synthetic dev set,
    else on pseudo-queries (`fusion_dev_set`).

    Those are the only places a weight may be tuned: picking it on a test set would report a number
    no user could reproduce.
    """
    dev, mode, n_dev = fusion_dev_set(layout, cfg)
    if dev is None:
        return {"mode": mode, "dev_queries": n_dev, "picked": {label: 0.5 for label, _ in models}}
    bi_run, _ = rerank_with_bi_encoder(bi_encoder, dev)
    picked: dict[str, float] = {}
    curves: dict[str, dict[str, float]] = {}
    for label, path in models:
        cross = evaluate_cross_encoder(label, path, dev, device, cfg)
        curve = {
            w: mean(evaluate(dev.qrels, fuse_runs(cross.run, bi_run, w), ("ndcg@10",))["ndcg@10"])
            for w in FUSE_GRID
        }
        best = max(curve.values())
        # among equally good weights, the one nearest an even mix: the least tuned choice
        picked[label] = min(
            (w for w, v in curve.items() if v >= best - 1e-12), key=lambda w: (abs(w - 0.5), w)
        )
        curves[label] = {f"{w:g}": round(v, 4) for w, v in curve.items()}
        log.info(
            "fusion weight for %s picked on %d %s queries: %g",
            label,
            len(dev.candidates),
            dev.name,
            picked[label],
        )
    return {
        "mode": mode,
        "grid": list(FUSE_GRID),
        "dev_queries": n_dev,
        **({"pseudo_queries": len(dev.candidates)} if mode == "pseudo" else {}),
        "picked": picked,
        "dev_ndcg@10": curves,
    }


def run_evaluate(layout: RunLayout, cfg: EvalConfig) -> dict[str, Any]:
    """Rerank each data set's first-stage lists with every system; write report.{json,md} and chart.png.

    No data sets means no evaluation: the report says so and nothing is loaded.
    """
    from synthrank.stages.evaluate.report import (
        fusion_card_text,
        print_table,
        set_card_evaluation,
        write_report,
    )

    output = Path(cfg.output) if cfg.output else layout.eval
    if not cfg.datasets:
        empty = {"device": None, "torch_threads": None, "candidate": None, "config": dict(cfg.__dict__)}
        written = write_report(output, {**empty, "datasets": {}})
        log.info("no evaluation: [evaluate] datasets is empty")
        return {"datasets": 0, "systems": 0, "pairs": 0, "report": str(written["json"])}
    specs = cfg.models or ([f"ours={layout.model}"] if layout.model.is_dir() else [])
    models = [parse_model_spec(s) for s in specs]
    if not models and not cfg.bi_encoder and not cfg.first_stage_row:
        raise InvalidArgumentError("nothing to evaluate: give --model, a bi-encoder or the first-stage row")
    device = pick_device(cfg.device)
    datasets = [load_dataset(spec, layout, cfg) for spec in cfg.datasets]
    results: list[SystemResult] = []
    bi_encoder = load_bi_encoder(layout, cfg.bi_encoder, device)
    fusion = None
    if cfg.fuse_weights == "auto" and models and bi_encoder is not None:
        if DEV_NAME in cfg.datasets:
            # the weight would be picked and then scored on the same queries: compare models alone
            log.info('no fused rows: fuse_weights = "auto" picks its weight on the dev set being evaluated')
        else:
            fusion = pick_fuse_weights(layout, models, bi_encoder, device, cfg)
    fixed = [] if isinstance(cfg.fuse_weights, str) else cfg.fuse_weights  # "auto" fixes none
    weights: dict[str, list[float]] = {
        label: [fusion["picked"][label]] if fusion else list(fixed) for label, _ in models
    }
    picked_on_dev = fusion is not None and fusion["mode"] != "even"
    for ds in datasets:
        log.info("%s: %d queries, %d pairs", ds.name, len(ds.candidates), ds.n_pairs)
        if cfg.first_stage_row:
            results.append(score_run(ds.first_stage, "first-stage", ds, ds.first_stage_run(), None, 0.0))
        bi_run: dict[str, dict[str, float]] = {}
        if bi_encoder is not None:
            started = time.perf_counter()
            bi_run, pps = rerank_with_bi_encoder(bi_encoder, ds)
            seconds = time.perf_counter() - started
            results.append(score_run("bi-encoder", "bi-encoder", ds, bi_run, pps, seconds))
        for label, path in models:
            cross = evaluate_cross_encoder(label, path, ds, device, cfg)
            results.append(cross)
            for w in weights[label]:
                fused = fuse_runs(cross.run, bi_run, w)
                name = fused_label(label, w, picked=picked_on_dev)
                results.append(score_run(name, "fused", ds, fused, None, cross.seconds))
    candidate = None
    if models:
        label = models[-1][0]
        candidate = fused_label(label, weights[label][-1], picked=picked_on_dev) if weights[label] else label
    report = build_report(datasets, results, candidate, device, cfg, fusion)
    if bi_encoder is not None:
        report["bi_encoder"] = {
            "model": bi_encoder.name,
            "query_prompt": bi_encoder.query_prompt,
            "passage_prompt": bi_encoder.passage_prompt,
        }
    written = write_report(output, report)
    print_table(report)
    for label, path in models:
        folder = Path(path)
        if not folder.is_dir():
            continue
        record = fusion_record(fusion, label, bi_encoder, cfg) if fusion and bi_encoder else None
        usage = fusion_card_text(record, fused_label(label, record["weight"])) if record else ""
        if set_card_evaluation(folder, written["markdown_tables"] + usage) and record:
            write_fusion(folder, record)
    return {
        "datasets": len(datasets),
        "systems": len(results) // max(1, len(datasets)),
        "pairs": sum(ds.n_pairs for ds in datasets),
        "report": str(written["json"]),
        **({"fuse_weights_picked": fusion["picked"]} if fusion else {}),
    }


def fusion_record(fusion: dict[str, Any], label: str, bi: BiEncoder, cfg: EvalConfig) -> dict[str, Any]:
    """What `FusedReranker` needs to serve a model's fused row: the weight and where it came from,
    the bi-encoder with its prompts and input length, the cross-encoder's input lengths."""
    return {
        "weight": fusion["picked"][label],
        "mode": fusion["mode"],  # "auto": picked on the dev set; "pseudo": on pseudo-queries; "even": 0.5
        "dev_queries": fusion["dev_queries"],
        **({"pseudo_queries": fusion["pseudo_queries"]} if "pseudo_queries" in fusion else {}),
        "formula": "weight * z(cross-encoder logit) + (1 - weight) * z(bi-encoder cosine), z per query",
        "bi_encoder": {
            "model": bi.name,
            "query_prompt": bi.query_prompt,
            "passage_prompt": bi.passage_prompt,
            "max_seq_length": bi.model.max_seq_length,
        },
        "max_length": cfg.max_length,
        "max_query_tokens": cfg.max_query_tokens,
    }


SIGNIFICANCE = 0.05  # the verdicts' level for the paired randomisation test


def verdict(system: str, baseline: str, comparison: dict[str, float]) -> dict[str, Any]:
    """better / worse / no significant difference, from a paired comparison on per-query nDCG@10."""
    p, diff = comparison["p_randomization"], comparison["mean_diff"]
    outcome = "no significant difference" if p >= SIGNIFICANCE else "better" if diff > 0 else "worse"
    return {
        "system": system,
        "baseline": baseline,
        "verdict": outcome,
        "mean_diff": round(diff, 4),
        "p": p,
        "queries": int(comparison["n"]),
    }


def build_report(
    datasets: list[EvalDataset],
    results: list[SystemResult],
    candidate: str | None,
    device: torch.device,
    cfg: EvalConfig,
    fusion: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON report: per data set, each system's means and speed, the candidate's paired tests and
    verdicts (and, when the candidate is a fused row, the unfused model's verdicts against the
    first stage and the bi-encoder)."""
    out: dict[str, Any] = {
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "candidate": candidate,
        "config": {k: v for k, v in cfg.__dict__.items()},
        "fusion": fusion,
        "datasets": {},
    }
    for ds in datasets:
        rows = [r for r in results if r.dataset == ds.name]
        entry: dict[str, Any] = {
            "queries": len(ds.candidates),
            "pairs": ds.n_pairs,
            "first_stage": ds.first_stage,
            "relevance_level": ds.relevance_level,
            "kind": ds.meta.get("kind"),
            "systems": {
                r.system: {
                    "kind": r.kind,
                    **{m: round(v, 4) for m, v in r.means.items()},
                    "pairs_per_second": round(r.pairs_per_second, 1) if r.pairs_per_second else None,
                    "seconds": round(r.seconds, 2),
                }
                for r in rows
            },
            "per_query_ndcg@10": {r.system: r.per_query["ndcg@10"] for r in rows},
            "comparisons": {},
            "verdicts": [],
        }
        cand = next((r for r in rows if r.system == candidate), None)
        if cand is not None:
            for other in rows:
                if other.system != candidate:
                    entry["comparisons"][other.system] = {
                        m: paired_comparison(other.per_query[m], cand.per_query[m], seed=cfg.seed)
                        for m in METRICS
                    }
                    entry["verdicts"].append(
                        verdict(cand.system, other.system, entry["comparisons"][other.system]["ndcg@10"])
                    )
            unfused = next(
                (r for r in rows if r.kind == "cross-encoder" and cand.system.startswith(f"{r.system}+bi@")),
                None,
            )
            if cand.kind == "fused" and unfused is not None:
                for other in rows:
                    if other.kind in ("first-stage", "bi-encoder"):
                        comparison = paired_comparison(
                            other.per_query["ndcg@10"], unfused.per_query["ndcg@10"], seed=cfg.seed
                        )
                        entry["verdicts"].append(verdict(unfused.system, other.system, comparison))
        out["datasets"][ds.name] = entry
    return out
