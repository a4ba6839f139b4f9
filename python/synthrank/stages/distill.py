"""The warm start: a fresh cross-encoder learns its teacher's ranking before any LLM label is used.

A cross-encoder made from a bi-encoder starts with a random relevance head, and the few hundred
LLM-labelled groups a CPU run affords do not teach it to rank: it ends below the bi-encoder it came
from. That bi-encoder already ranks the domain well and its opinion costs nothing, so the student
first learns to reproduce the teacher's scores over each query's candidate list, on queries that
cost no LLM call: the run's synthetic queries plus pseudo-queries cut from training passages (a
sentence taken out of its passage, Inverse-Cloze style; the passage keeps the rest).

The loss is listwise KL between softmax(teacher / temperature) and softmax(student) over each list
(not MarginMSE): the teacher's cosines are not on a logit scale, and the softmax only asks the
student for the teacher's order and relative gaps, over a whole list at once. Lists mix the
teacher's top candidates (what a reranker must order) with random passages (so the student also
learns what is plainly off-topic). Queries and passages of the dev set's documents are left out, so
the dev set still measures held-out queries.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from synthrank.config import above, at_least
from synthrank.errors import ConfigError, InputFormatError
from synthrank.pseudo_queries import (
    MAX_SENTENCE_WORDS,
    MIN_SENTENCE_WORDS,
    cut_sentence,
    write_pseudo_query_sources,
)
from synthrank.records import Passage, Query, RunLayout, read_jsonl
from synthrank.stages.mine import MineConfig, in_dev
from synthrank.stages.retrieve import (
    EmbedConfig,
    exact_search,
    load_candidates,
    load_embeddings,
    load_model,
    trainable_rows,
)
from synthrank.stages.train.warm_start import write_marker

if TYPE_CHECKING:
    from synthrank.stages.train.trainer import TrainConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistillConfig:
    """Options of the warm start (the `[distill]` table of synthrank.toml)."""

    enabled: Literal["auto", "on", "off"] = "auto"  # auto: on unless [train] model is a trained reranker
    teacher: str = ""  # "" = the [embed] bi-encoder (its embeddings are reused); or a bi-/cross-encoder
    pseudo_queries: int = 3000  # sentences cut from training passages (no LLM call)
    synthetic_queries: bool = True  # also the run's LLM-written queries
    list_size: int = 8  # candidates per query the student ranks
    random_candidates: int = 2  # of those, random training passages; the rest are the teacher's top
    temperature: float = 0.05  # teacher softmax temperature (cosine scale)
    min_sentence_words: int = MIN_SENTENCE_WORDS
    max_sentence_words: int = MAX_SENTENCE_WORDS
    batch_size: int = 8  # queries per micro-batch
    epochs: int = 1
    max_steps: int = 0  # > 0 overrides epochs (more steps than one pass go on into the next); 0 = epochs
    learning_rate: float = 1e-4
    head_learning_rate: float = 1e-3
    max_length: int = 128
    seed: int = 13
    checkpoint_every: int = 200

    def __post_init__(self) -> None:
        at_least(self, "distill", 1, "list_size", "batch_size", "epochs", "max_length", "min_sentence_words")
        at_least(
            self,
            "distill",
            0,
            "pseudo_queries",
            "max_steps",
            "checkpoint_every",
            "seed",
            "learning_rate",
            "head_learning_rate",
        )
        at_least(self, "distill", 2, "list_size")
        if not 0 <= self.random_candidates < self.list_size:
            raise ConfigError(
                f"must be in [0, list_size), got {self.random_candidates}",
                section="distill",
                key="random_candidates",
            )
        above(self, "distill", 0, "temperature")
        if self.max_sentence_words < self.min_sentence_words:
            raise ConfigError(
                f"must be >= min_sentence_words ({self.min_sentence_words})",
                section="distill",
                key="max_sentence_words",
            )


def is_trained_reranker(name_or_path: str) -> bool:
    """Whether a start model already scores pairs (a sequence-classification checkpoint)."""
    from synthrank.models import resolve_model

    config = Path(resolve_model(name_or_path)) / "config.json"
    if config.is_file():
        archs = json.loads(config.read_text(encoding="utf-8")).get("architectures") or []
        return any(a.endswith("ForSequenceClassification") for a in archs)
    return any(word in name_or_path.lower() for word in ("cross-encoder", "reranker"))


def wanted(cfg: DistillConfig, start_model: str) -> bool:
    return cfg.enabled == "on" or (cfg.enabled == "auto" and not is_trained_reranker(start_model))


# --- the lists -----------------------------------------------------------------------------------


@dataclass
class ListStats:
    pseudo_queries: int = 0
    synthetic_queries: int = 0
    skipped_no_sentence: int = 0
    list_size: int = 0
    teacher: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class TeacherLists:
    """Per query: the candidate texts (any order) and the teacher's score of each; the trainer's data."""

    queries: list[str]
    texts: list[list[str]]
    teacher: np.ndarray  # [queries, list_size] float32
    seed: int
    stats: ListStats = field(default_factory=ListStats)
    sources: list[str] = field(default_factory=list)  # passage ids the pseudo-queries were cut from

    def __len__(self) -> int:
        return len(self.queries)

    def epoch_order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.queries))

    def group(self, index: int, epoch: int) -> tuple[str, list[str]]:
        return self.queries[index], self.texts[index]

    def targets(self, index: int, epoch: int) -> np.ndarray:
        return self.teacher[index]


def _usable_rows(layout: RunLayout, mine: MineConfig) -> np.ndarray:
    """Trainable passage rows outside the dev set's documents."""
    rows = set(trainable_rows(layout).tolist())
    keep = [
        row
        for row, p in enumerate(read_jsonl(layout.passages, Passage))
        if row in rows and not in_dev(p.doc_id, mine)
    ]
    return np.asarray(keep, dtype=np.int64)


def _texts_at(layout: RunLayout, rows: set[int]) -> dict[int, Passage]:
    found: dict[int, Passage] = {}
    for row, p in enumerate(read_jsonl(layout.passages, Passage)):
        if row in rows:
            found[row] = p
    return found


def _fill_lists(
    top: np.ndarray, usable: np.ndarray, size: int, n_top: int, rng: np.random.Generator
) -> np.ndarray:
    """[queries, size] passage rows: the first `n_top` hits of `top` (-1 = none), then random usable rows."""
    out = np.full((len(top), size), -1, dtype=np.int64)
    for i, hits in enumerate(top):
        chosen = [int(r) for r in hits[hits >= 0][:n_top]]
        taken = set(chosen)
        while len(chosen) < size and len(taken) < len(usable):
            r = int(usable[int(rng.integers(len(usable)))])
            if r not in taken:
                chosen.append(r)
                taken.add(r)
        out[i, : len(chosen)] = chosen
    return out


OWN_PASSAGE = -2  # list slot of a pseudo-query's own passage, which the list holds without the sentence


def build_lists(layout: RunLayout, cfg: DistillConfig, embed: EmbedConfig, mine: MineConfig) -> TeacherLists:
    """Queries (pseudo and synthetic), their candidate lists and the teacher's scores."""
    rng = np.random.default_rng(cfg.seed)
    usable = _usable_rows(layout, mine)
    if len(usable) <= cfg.list_size:
        raise InputFormatError(
            layout.passages, None, f"{len(usable)} training passages: too few for [distill] list_size"
        )
    passage_vectors = load_embeddings(layout, "passages")
    stats = ListStats(list_size=cfg.list_size, teacher=cfg.teacher or embed.model)
    picks = np.sort(rng.choice(usable, size=min(cfg.pseudo_queries, len(usable)), replace=False))
    sources = _texts_at(layout, set(picks.tolist()))
    pseudo: list[tuple[int, str, Passage]] = []
    for row in picks.tolist():
        p = sources[row]
        cut = cut_sentence(p.text, rng, cfg.min_sentence_words, cfg.max_sentence_words)
        if cut is None:
            stats.skipped_no_sentence += 1
            continue
        pseudo.append((row, cut[0], Passage(p.passage_id, p.doc_id, cut[1], p.title)))
    stats.pseudo_queries = len(pseudo)
    queries = [q for _, q, _ in pseudo]
    model = load_model(embed)
    query_vectors = _encode(model, queries, embed.query_prompt, embed_dim(passage_vectors))
    cut_texts = [f"{p.title}\n{p.text}" if embed.include_title and p.title else p.text for _, _, p in pseudo]
    own_vectors = _encode(model, cut_texts, embed.passage_prompt, embed_dim(passage_vectors))
    n_top = cfg.list_size - cfg.random_candidates
    top, _ = exact_search(query_vectors, passage_vectors, n_top, rows=usable)
    own = np.asarray([row for row, _, _ in pseudo], dtype=np.int64)
    top = np.where(top == own[:, None], -1, top)  # the own passage is in the list once, cut
    rows = np.concatenate(
        [
            np.full((len(pseudo), 1), OWN_PASSAGE, dtype=np.int64),
            _fill_lists(top, usable, cfg.list_size - 1, n_top - 1, rng),
        ],
        axis=1,
    )
    if cfg.synthetic_queries and layout.queries.is_file() and layout.candidates.is_file():
        synth, synth_rows, synth_vectors = _synthetic_lists(layout, cfg, mine, usable, rng)
        queries += synth
        rows = np.concatenate([rows, synth_rows])
        query_vectors = np.concatenate([query_vectors, synth_vectors])
        stats.synthetic_queries = len(synth)
    found = _texts_at(layout, set(rows[rows >= 0].tolist()))
    teacher = np.zeros(rows.shape, dtype=np.float32)
    texts: list[list[str]] = []
    for i, row_list in enumerate(rows.tolist()):
        list_texts = []
        for j, r in enumerate(row_list):
            if r == OWN_PASSAGE:
                list_texts.append(pseudo[i][2].reranker_text)
                teacher[i, j] = float(query_vectors[i] @ own_vectors[i])
            else:
                list_texts.append(found[r].reranker_text)
                teacher[i, j] = float(query_vectors[i] @ np.asarray(passage_vectors[r], dtype=np.float32))
        texts.append(list_texts)
    if cfg.teacher:
        teacher = _external_teacher(cfg.teacher, queries, texts)
    return TeacherLists(queries, texts, teacher, cfg.seed, stats, [p.passage_id for _, _, p in pseudo])


def embed_dim(vectors: np.ndarray) -> int:
    return int(vectors.shape[1])


def _encode(model: Any, texts: list[str], prompt: str, dim: int) -> np.ndarray:
    if not texts:
        return np.zeros((0, dim), dtype=np.float32)
    return np.asarray(
        model.encode(
            texts, batch_size=64, prompt=prompt or None, normalize_embeddings=True, show_progress_bar=False
        ),
        dtype=np.float32,
    )


def _synthetic_lists(
    layout: RunLayout, cfg: DistillConfig, mine: MineConfig, usable: np.ndarray, rng: np.random.Generator
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The run's LLM-written queries (outside dev documents) with their retrieved top candidates."""
    candidates = load_candidates(layout.candidates)
    vectors = load_embeddings(layout, "queries")
    allowed = np.zeros(int(usable.max()) + 2, dtype=bool)
    allowed[usable] = True
    position = {str(q): i for i, q in enumerate(candidates.query_ids)}
    texts, picked, rows_of = [], [], []
    for row, q in enumerate(read_jsonl(layout.queries, Query)):
        i = position.get(q.query_id)
        if i is None or in_dev(q.doc_id, mine):
            continue
        hits = candidates.ids[i]
        hits = np.where((hits >= 0) & allowed[np.clip(hits, 0, len(allowed) - 1)], hits, -1)
        texts.append(q.text)
        picked.append(row)
        rows_of.append(hits)
    if not texts:
        return [], np.zeros((0, cfg.list_size), dtype=np.int64), np.zeros((0, vectors.shape[1]), np.float32)
    n_top = cfg.list_size - cfg.random_candidates
    lists = _fill_lists(np.stack(rows_of), usable, cfg.list_size, n_top, rng)
    return texts, lists, np.asarray(vectors[picked], np.float32)


def _external_teacher(name: str, queries: list[str], texts: list[list[str]]) -> np.ndarray:
    """Scores from a teacher other than the run's bi-encoder: a cross-encoder or a bi-encoder."""
    from synthrank.models import resolve_model

    path = resolve_model(name)
    if is_trained_reranker(name):
        from sentence_transformers import CrossEncoder

        ce = CrossEncoder(path)
        flat = [(q, t) for q, ts in zip(queries, texts, strict=True) for t in ts]
        scores = ce.predict(flat, batch_size=64, show_progress_bar=False)
        return np.asarray(scores, dtype=np.float32).reshape(len(queries), -1)
    model = load_model(EmbedConfig(model=name))
    q = _encode(model, queries, "", 1)
    out = np.zeros((len(queries), len(texts[0]) if texts else 0), dtype=np.float32)
    for i, ts in enumerate(texts):
        out[i] = _encode(model, ts, "", 1) @ q[i]
    return out


# --- the stage -----------------------------------------------------------------------------------


# The student's training options: these of [distill] (same names in TrainConfig) ...
FROM_DISTILL = (
    "batch_size",
    "epochs",
    "max_steps",
    "learning_rate",
    "head_learning_rate",
    "max_length",
    "seed",
    "checkpoint_every",
)
# ... and TrainConfig's defaults for the recipe options that LCE on mined groups tunes in [train]; every
# other option (the start model, the machine, how dev is measured, any new one) is [train]'s own.
RECIPE_DEFAULTS = (
    "loss",
    "grad_accumulation",
    "weight_decay",
    "warmup_ratio",
    "max_grad_norm",
    "random_negative_share",
    "too_few_negatives",
    "negatives",
    "positives",
    "eval_every",
    "warm_start",
    "distill_weight",
    "distill_temperature",
)


def student_config(train: TrainConfig, cfg: DistillConfig, folder: Path) -> TrainConfig:
    """The TrainConfig of the warm start: [train] with the [distill] options and the recipe defaults."""
    defaults = type(train)()
    return dataclasses.replace(
        train,
        **{name: getattr(cfg, name) for name in FROM_DISTILL},
        **{name: getattr(defaults, name) for name in RECIPE_DEFAULTS},
        group_size=cfg.list_size,
        max_query_tokens=min(train.max_query_tokens, cfg.max_length - 1),
        early_stopping_patience=0,
        output=str(folder),
    )


def run_distill(
    layout: RunLayout, cfg: DistillConfig, train: TrainConfig, embed: EmbedConfig, mine: MineConfig
) -> dict[str, Any]:
    """Train the warm start into RUN/warm_start (or record that it is off); returns counts."""
    from synthrank.stages.train.trainer import Trainer

    folder = layout.warm_start
    if not wanted(cfg, train.model):
        reason = "off" if cfg.enabled == "off" else f"{train.model} is already a trained reranker"
        write_marker(folder, {"enabled": False, "start_model": train.model, "reason": reason})
        log.info("warm start skipped: %s", reason)
        return {"warm_start": "skipped", "reason": reason}
    lists = build_lists(layout, cfg, embed, mine)
    log.info(
        "warm start: %d pseudo-queries + %d synthetic queries, %d candidates each, teacher %s",
        lists.stats.pseudo_queries,
        lists.stats.synthetic_queries,
        cfg.list_size,
        lists.stats.teacher,
    )
    student = student_config(train, cfg, folder)
    trainer = Trainer(layout, student, data=lists, loss=distill_loss(cfg.temperature))
    result = trainer.train()
    write_pseudo_query_sources(layout, lists.sources)  # the trainer replaces the folder: after it
    write_marker(folder, {"enabled": True, "start_model": train.model, "distill": asdict(cfg)})
    return {
        "warm_start": "trained",
        **lists.stats.as_dict(),
        **{k: v for k, v in result.items() if k != "dev_history"},
    }


def distill_loss(temperature: float) -> Any:
    from synthrank.stages.train.losses import listwise_kl

    def loss(logits: Any, targets: Any) -> Any:
        return listwise_kl(logits, targets, temperature)

    return loss
