"""Cross-encoder loading and (query, passage) scoring, shared by training and evaluation.

The trainer scores its dev set and the evaluate stage scores test sets with the same code, so a
checkpoint chosen on dev is measured on test exactly as it was chosen. Neither package imports the
other for it: both import this module, which imports neither. torch, numpy and transformers load on
first use, so importing this module stays cheap.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from synthrank.models import resolve_model

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    import numpy as np


def load_cross_encoder(name_or_path: str, device: Any = "cpu") -> tuple[Any, Any]:
    """(model, tokenizer) with one relevance logit from a local path, a packaged model or a hub name.

    A sequence-classification checkpoint (e.g. a sentence-transformers CrossEncoder) keeps its head;
    an encoder-only checkpoint (e.g. a bi-encoder) gets a new, randomly initialised 1-logit head.
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from synthrank.errors import InvalidArgumentError

    path = resolve_model(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        architectures = AutoConfig.from_pretrained(path).architectures or []
        new_head = not any(a.endswith("ForSequenceClassification") for a in architectures)
        verbosity = hf_logging.get_verbosity()
        if new_head:  # expected: transformers' report of the missing head would only alarm
            hf_logging.set_verbosity_error()
            log.info("%s: an encoder without a relevance head: a new 1-logit head", name_or_path)
        try:
            model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
        finally:
            hf_logging.set_verbosity(verbosity)
    except (OSError, ValueError) as exc:
        raise InvalidArgumentError(f"model {name_or_path!r}: cannot load as a cross-encoder: {exc}") from exc
    return model.to(device), tokenizer


def cap_queries(tokenizer: Any, queries: Sequence[str], max_query_tokens: int) -> list[str]:
    """Queries longer than `max_query_tokens` cut to that many tokens; the rest stay as written."""
    if not queries:
        return []
    ids = tokenizer(list(queries), add_special_tokens=False)["input_ids"]
    return [
        tokenizer.decode(tok[:max_query_tokens]) if len(tok) > max_query_tokens else q
        for q, tok in zip(queries, ids, strict=True)
    ]


def score_pairs(
    model: Any,
    tokenizer: Any,
    queries: Sequence[str],
    passages: Sequence[str],
    *,
    max_length: int = 512,
    max_query_tokens: int = 64,
    tokens_per_batch: int = 16_384,
    max_batch_size: int = 256,
    precision: str = "auto",
) -> np.ndarray:
    """Relevance logits for (query, passage) pairs, in input order.

    Pairs are sorted by token length and cut into batches of about `tokens_per_batch` padded tokens,
    which is the batch-size auto-tuning: padding stays small and memory per batch stays flat.
    """
    import numpy as np
    import torch

    from synthrank.devices import autocast_dtype

    device = next(model.parameters()).device
    dtype = autocast_dtype(precision, device)
    capped = cap_queries(tokenizer, queries, max_query_tokens)
    enc = tokenizer(capped, list(passages), truncation="only_second", max_length=max_length)
    lengths = np.array([len(ids) for ids in enc["input_ids"]])
    order = np.argsort(-lengths, kind="stable")
    scores = np.empty(len(order), dtype=np.float32)
    was_training = model.training
    model.eval()
    start = 0
    with torch.inference_mode():
        while start < len(order):
            size = max(1, min(max_batch_size, tokens_per_batch // int(lengths[order[start]])))
            idx = order[start : start + size]
            batch = tokenizer.pad({k: [enc[k][i] for i in idx] for k in enc}, return_tensors="pt")
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                logits = model(**{k: v.to(device) for k, v in batch.items()}).logits
            scores[idx] = logits[:, 0].float().cpu().numpy()
            start += size
    model.train(was_training)
    return scores


class CandidateLists(Protocol):
    """What reranking reads from a data set (`evaluation.datasets.EvalDataset` is one)."""

    @property
    def queries(self) -> Mapping[str, str]: ...
    @property
    def passages(self) -> Mapping[str, str]: ...
    @property
    def candidates(self) -> Mapping[str, Sequence[str]]: ...


def rerank_with_cross_encoder(
    model: Any,
    tokenizer: Any,
    ds: CandidateLists,
    *,
    max_length: int = 512,
    max_query_tokens: int = 64,
    precision: str = "auto",
) -> tuple[dict[str, dict[str, float]], float]:
    """(run, pairs per second) for a cross-encoder over the data set's candidate lists."""
    pairs = [(q, d) for q, cands in ds.candidates.items() for d in cands]
    started = time.perf_counter()
    scores = score_pairs(
        model,
        tokenizer,
        [ds.queries[q] for q, _ in pairs],
        [ds.passages[d] for _, d in pairs],
        max_length=max_length,
        max_query_tokens=max_query_tokens,
        precision=precision,
    )
    elapsed = time.perf_counter() - started
    run: dict[str, dict[str, float]] = {q: {} for q in ds.candidates}
    for (q, d), s in zip(pairs, scores, strict=True):
        run[q][d] = float(s)
    return run, len(pairs) / elapsed if elapsed > 0 else float("inf")
