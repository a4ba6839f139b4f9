"""The fused ranker: a fine-tuned cross-encoder's scores mixed with the bi-encoder's, per query.

`synthrank evaluate` measures it as the `ours+bi@w` row and, where it picks the weight, records the
weight and the bi-encoder (model, prompts, input length) in the model folder's `FUSION_FILE`;
`FusedReranker` reads that file and serves the same ranker, scores and all.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from synthrank.errors import InvalidArgumentError

FUSION_FILE = "synthrank_fusion.json"


@dataclass(frozen=True)
class BiEncoder:
    """A sentence-transformers bi-encoder and the prompts it embeds with: evaluate's bi-encoder row,
    and the first stage a fused ranker mixes with."""

    model: Any
    query_prompt: str = ""
    passage_prompt: str = ""
    name: str = ""  # as configured or recorded, for the report

    @classmethod
    def load(cls, settings: dict[str, Any], device: Any, field: str) -> BiEncoder:
        """From recorded settings (`model`, `max_seq_length`, `query_prompt`, `passage_prompt`, as the
        embed stage records them); `field` names the setting in errors."""
        from synthrank.stages.retrieve import EmbedConfig, load_model

        cfg = EmbedConfig(
            model=settings["model"],
            device=str(device),
            max_seq_length=settings.get("max_seq_length"),
            query_prompt=settings.get("query_prompt") or "",
            passage_prompt=settings.get("passage_prompt") or "",
        )
        # fp16 on CUDA, as the embed stage: the model the run retrieved with
        return cls(load_model(cfg, field=field), cfg.query_prompt, cfg.passage_prompt, name=cfg.model)

    def encode(self, texts: list[str], *, queries: bool, batch_size: int = 64) -> np.ndarray:
        """L2-normalised embeddings, each text behind the query or the passage prompt."""
        prompt = (self.query_prompt if queries else self.passage_prompt) or None
        return np.asarray(
            self.model.encode(texts, prompt=prompt, batch_size=batch_size, normalize_embeddings=True)
        )


def zscores(scores: Sequence[float] | np.ndarray) -> np.ndarray:
    """Scores centred and scaled within one query's list (all equal: all zero)."""
    values = np.asarray(scores, dtype=np.float64)
    if values.size == 0:
        return values
    spread = float(values.std()) or 1.0
    return (values - float(values.mean())) / spread


def fuse_scores(
    cross: Sequence[float] | np.ndarray, first: Sequence[float] | np.ndarray, weight: float
) -> np.ndarray:
    """weight * z(cross) + (1 - weight) * z(first) over one query's candidates.

    Per-query z-scores put logits and cosines on one scale without a held-out calibration, so one
    weight carries across queries. `cross` are raw logits (sentence-transformers' `predict` returns
    their sigmoid unless given `activation_fn=torch.nn.Identity()`), `first` the bi-encoder's cosines.
    """
    if len(cross) != len(first):
        raise InvalidArgumentError(
            f"fuse_scores: {len(cross)} cross-encoder scores, {len(first)} first-stage"
        )
    return weight * zscores(cross) + (1.0 - weight) * zscores(first)


def write_fusion(folder: Path, settings: dict[str, Any]) -> Path:
    """Record the fused ranker (weight, how it was chosen, the bi-encoder, input lengths) with the model."""
    path = Path(folder) / FUSION_FILE
    path.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    return path


class FusedReranker:
    """A synthrank model folder's fused ranker, as the report's fused row measured it.

    `weight` overrides the recorded one (1 = the cross-encoder alone, 0 = the bi-encoder alone).
    The bi-encoder loads on first use, so `score(..., first=cosines)` with the cosines a
    first-stage search already returned costs one cross-encoder pass.
    """

    def __init__(self, folder: str | Path, *, device: str = "auto", weight: float | None = None) -> None:
        from synthrank.devices import pick_device
        from synthrank.scoring import load_cross_encoder

        self.folder = Path(folder)
        path = self.folder / FUSION_FILE
        if not path.is_file():
            raise InvalidArgumentError(
                f"{path}: not found: `synthrank evaluate` writes it when it fuses the model with its "
                'bi-encoder ([evaluate] fuse_weights = "auto", the default)'
            )
        try:
            self.settings: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            recorded = float(self.settings["weight"])
            str(self.settings["bi_encoder"]["model"])  # loaded on first use: checked now
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidArgumentError(f"{path}: not a fusion record ({exc!r})") from exc
        self.weight = recorded if weight is None else weight
        if not 0.0 <= self.weight <= 1.0:
            raise InvalidArgumentError(f"weight must be in [0, 1], got {self.weight}")
        self.device = pick_device(device)
        self.model, self.tokenizer = load_cross_encoder(str(self.folder), self.device)
        self._bi: BiEncoder | None = None

    def cross_scores(self, query: str, passages: Sequence[str]) -> np.ndarray:
        """The cross-encoder's logits for (query, passage) pairs, as evaluate scores them."""
        from synthrank.scoring import score_pairs

        return score_pairs(
            self.model,
            self.tokenizer,
            [query] * len(passages),
            list(passages),
            max_length=int(self.settings.get("max_length", 512)),
            max_query_tokens=int(self.settings.get("max_query_tokens", 64)),
        )

    def first_scores(self, query: str, passages: Sequence[str]) -> np.ndarray:
        """The bi-encoder's cosines, with the prompts and input length it was fused with."""
        if self._bi is None:
            field = f"{self.folder / FUSION_FILE}: bi_encoder"
            self._bi = BiEncoder.load(self.settings["bi_encoder"], self.device, field)
        q = self._bi.encode([query], queries=True)
        p = self._bi.encode(list(passages), queries=False)
        return np.asarray(p @ q[0], dtype=np.float64)

    def score(
        self, query: str, passages: Sequence[str], first: Sequence[float] | np.ndarray | None = None
    ) -> np.ndarray:
        """The fused score of each passage; `first`: the bi-encoder's cosines if already known."""
        if not passages:
            return np.zeros(0)
        cross = self.cross_scores(query, passages) if self.weight > 0 else np.zeros(len(passages))
        if self.weight >= 1.0:
            return fuse_scores(cross, np.zeros(len(passages)), 1.0)
        cosines = self.first_scores(query, passages) if first is None else first
        return fuse_scores(cross, cosines, self.weight)

    def rank(
        self, query: str, passages: Sequence[str], first: Sequence[float] | np.ndarray | None = None
    ) -> list[tuple[int, float]]:
        """(index into passages, fused score), best first."""
        scores = self.score(query, passages, first)
        order = np.argsort(-scores, kind="stable")
        return [(int(i), float(scores[i])) for i in order]
