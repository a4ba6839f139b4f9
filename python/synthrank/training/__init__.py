"""Fine-tune a cross-encoder on mined groups: data contract, losses, trainer, model card."""

from __future__ import annotations

from typing import Any

from synthrank.models import resolve_model


def load_cross_encoder(name_or_path: str, device: Any = "cpu") -> tuple[Any, Any]:
    """(model, tokenizer) with one relevance logit from a local path, a packaged model or a hub name.

    A sequence-classification checkpoint (e.g. a sentence-transformers CrossEncoder) keeps its head;
    an encoder-only checkpoint (e.g. a bi-encoder) gets a new, randomly initialised 1-logit head.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from synthrank.errors import InvalidArgumentError

    path = resolve_model(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
    except (OSError, ValueError) as exc:
        raise InvalidArgumentError(f"model {name_or_path!r}: cannot load as a cross-encoder: {exc}") from exc
    return model.to(device), tokenizer
