"""The model card (README.md) saved with a fine-tuned cross-encoder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CARD_EVAL_START = "<!-- synthrank:evaluation -->"
CARD_EVAL_END = "<!-- /synthrank:evaluation -->"

_KEYS = (
    "loss",
    "group_size",
    "batch_size",
    "grad_accumulation",
    "epochs",
    "max_steps",
    "learning_rate",
    "weight_decay",
    "warmup_ratio",
    "max_length",
    "max_query_tokens",
    "negatives",
    "positives",
    "random_negative_share",
    "too_few_negatives",
    "seed",
    "precision",
)


def _table(rows: list[tuple[str, Any]]) -> str:
    return "\n".join(["| key | value |", "| --- | --- |", *(f"| {k} | {v} |" for k, v in rows)])


def write_model_card(
    folder: Path, *, base_model: str, config: dict[str, Any], result: dict[str, Any], evaluation_md: str = ""
) -> Path:
    """Write `folder/README.md`: base model, data statistics, training config, evaluation if known."""
    data_rows = [(k.removeprefix("data_"), v) for k, v in result.items() if k.startswith("data_")]
    run_rows = [(k, v) for k, v in result.items() if not k.startswith("data_")]
    evaluation = evaluation_md or "Not evaluated yet: run `synthrank evaluate RUN`."
    text = f"""---
library_name: sentence-transformers
pipeline_tag: text-ranking
tags: [cross-encoder, reranker, synthrank]
base_model: {base_model}
---

# Cross-encoder reranker fine-tuned by synthrank

Fine-tuned from `{base_model}` on synthetic queries written by an LLM for passages of the domain
corpus, with LLM-judged positives and hard negatives (no human labels). Loss: `{config.get("loss")}`
over groups of 1 positive + {int(config.get("group_size", 8)) - 1} negatives. One relevance logit.

```python
from sentence_transformers import CrossEncoder
model = CrossEncoder("PATH_TO_THIS_FOLDER")
scores = model.predict([("query", "passage")])
```

## Training data

{_table(data_rows)}

## Training configuration

{_table([(k, config[k]) for k in _KEYS if k in config])}

## Training run

{_table(run_rows)}

## Evaluation

{CARD_EVAL_START}
{evaluation}
{CARD_EVAL_END}
"""
    path = Path(folder) / "README.md"
    path.write_text(text, encoding="utf-8")
    (Path(folder) / "synthrank_training.json").write_text(
        json.dumps({"base_model": base_model, "config": config, "result": result}, indent=2, default=str),
        encoding="utf-8",
    )
    return path


def set_card_evaluation(folder: Path, evaluation_md: str) -> bool:
    """Replace the evaluation section of an existing card; False if the folder has no synthrank card."""
    path = Path(folder) / "README.md"
    if not path.is_file():
        return False
    text = path.read_text(encoding="utf-8")
    if CARD_EVAL_START not in text or CARD_EVAL_END not in text:
        return False
    head, rest = text.split(CARD_EVAL_START, 1)
    _, tail = rest.split(CARD_EVAL_END, 1)
    path.write_text(f"{head}{CARD_EVAL_START}\n{evaluation_md}\n{CARD_EVAL_END}{tail}", encoding="utf-8")
    return True
