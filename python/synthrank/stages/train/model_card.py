"""The model card (README.md) saved with a fine-tuned cross-encoder."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

# The card's evaluation section belongs to the evaluate stage, which rewrites it after each run.
from synthrank.stages.evaluate.report import (
    CARD_EVAL_END,
    CARD_EVAL_START,  # tests import it here
)

# What the training result's rows mean, for the card's data statistics (keys of GroupStats).
_DATA_NOTES = {
    "groups_in": "query groups mined (train_groups.jsonl)",
    "groups_used": "groups trained on",
    "dropped_no_positive": "groups without a positive",
    "dropped_too_few_negatives": "groups dropped for too few negatives",
    "padded_too_few_negatives": "groups padded with random negatives",
    "negatives_per_query_mean": "mined negatives per query (mean)",
    "random_pool_size": "passages random negatives are drawn from",
}
# What CrossEncoder.save records for a 1-label model: its default activation (predict() returns
# sigmoid(logit); the ranking is the logits' own).
ACTIVATION_FN = "torch.nn.modules.activation.Sigmoid"


def _cell(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (dict, list, tuple)) else str(value)
    return text.replace("|", "\\|")


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return "\n".join([*lines, *("| " + " | ".join(_cell(v) for v in row) + " |" for row in rows)])


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"Python": platform.python_version()}
    for name, package in (
        ("synthrank", "synthrank"),
        ("PyTorch", "torch"),
        ("Transformers", "transformers"),
        ("Sentence Transformers", "sentence-transformers"),
    ):
        try:
            found[name] = version(package)
        except PackageNotFoundError:
            continue
    if "torch" in sys.modules:  # its own version string names the build (e.g. "+cpu"), as torch reports it
        found["PyTorch"] = str(sys.modules["torch"].__version__)
    return found


def _hub_name(model: str) -> bool:
    """A hub id ("org/name") rather than a local folder: only those belong in the card's metadata."""
    return model.count("/") == 1 and not Path(model).exists() and not model.startswith((".", "~"))


def write_model_card(
    folder: Path, *, base_model: str, config: dict[str, Any], result: dict[str, Any], evaluation_md: str = ""
) -> Path:
    """Write `folder/README.md` in the Hugging Face model-card layout: metadata, details, usage,
    data statistics, every training option, the training log, evaluation (if known), versions."""
    data_rows = [
        (k.removeprefix("data_"), v, _DATA_NOTES.get(k.removeprefix("data_"), ""))
        for k, v in result.items()
        if k.startswith("data_")
    ]
    run_rows = [(k, v) for k, v in result.items() if not k.startswith("data_") and k != "dev_history"]
    dev_history = result.get("dev_history") or []
    dev_table = (
        _table(("step", "dev nDCG@10"), [(h["step"], h["dev_ndcg@10"]) for h in dev_history])
        if dev_history
        else "No dev evaluation (no synthetic dev set, or one too small to pick checkpoints on)."
    )
    evaluation = evaluation_md or "Not evaluated yet: run `synthrank evaluate RUN`."
    negatives = int(config.get("group_size", 8)) - 1
    hub = _hub_name(base_model)
    base_link = f"[{base_model}](https://huggingface.co/{base_model})" if hub else f"`{base_model}`"
    # a local start model is named too (where it came from), though the Hub only links hub ids
    base_meta = f"base_model: {base_model}\n" if hub or Path(base_model).exists() else ""
    versions = "\n".join(f"- {name}: {value}" for name, value in _versions().items())
    text = f"""---
library_name: sentence-transformers
pipeline_tag: text-ranking
tags:
- sentence-transformers
- cross-encoder
- reranker
- text-ranking
- synthrank
{base_meta}---

# Cross-encoder reranker fine-tuned by synthrank

Fine-tuned from {base_link} on synthetic queries written by an LLM for passages of a domain corpus,
with LLM-judged positives and hard negatives (no human labels). It scores a (query, passage) pair
with one relevance logit: higher is more relevant.

## Model Details

- **Model type:** cross-encoder (sequence classification, 1 label: a relevance logit; sentence-transformers'
  `predict` returns its sigmoid)
- **Base model:** {base_link}
- **Maximum sequence length:** {config.get("max_length")} tokens, the query at most
  {config.get("max_query_tokens")} of them (the passage is cut, never the query)
- **Training loss:** `{config.get("loss")}` over groups of 1 positive + {negatives} negatives
- **Training data:** synthetic queries and LLM relevance grades made by `synthrank run` (statistics below)

## Usage

```python
from sentence_transformers import CrossEncoder

model = CrossEncoder("PATH_TO_THIS_FOLDER")
scores = model.predict([("query", "passage one"), ("query", "passage two")])
ranked = model.rank("query", ["passage one", "passage two"])
```

With `rerankers`: `Reranker("PATH_TO_THIS_FOLDER", model_type="cross-encoder").rank(query, docs)`; with
Transformers: `AutoModelForSequenceClassification.from_pretrained("PATH_TO_THIS_FOLDER")`. Passages
are read as the title, a space, then the text, as in training.

## Training Details

### Training Dataset

{_table(("statistic", "value", "meaning"), data_rows)}

### Training Hyperparameters

Every option of the train stage, as this model was trained (`[train]` in synthrank.toml):

{_table(("option", "value"), list(config.items()))}

### Training Logs

{_table(("key", "value"), run_rows)}

Checkpoint selection on the synthetic dev set:

{dev_table}

## Evaluation

{CARD_EVAL_START}
{evaluation}
{CARD_EVAL_END}

## Framework Versions

{versions}
"""
    path = Path(folder) / "README.md"
    path.write_text(text, encoding="utf-8")
    (Path(folder) / "synthrank_training.json").write_text(
        json.dumps({"base_model": base_model, "config": config, "result": result}, indent=2, default=str),
        encoding="utf-8",
    )
    return path


def write_sentence_transformers_config(folder: Path) -> Path:
    """`config_sentence_transformers.json` as `CrossEncoder.save` (sentence-transformers 6) writes it:
    `model_type` tells sentence-transformers and the tools built on it that the folder is a
    cross-encoder. No `modules.json`: without it every sentence-transformers release since 3 loads
    the folder as a plain Transformers reranker, as it loads any other."""
    versions = _versions()
    config = {
        "model_type": "CrossEncoder",
        "__version__": {
            "sentence_transformers": versions.get("Sentence Transformers", ""),
            "transformers": versions.get("Transformers", ""),
            "pytorch": versions.get("PyTorch", ""),
        },
        "activation_fn": ACTIVATION_FN,
        "prompts": {},
        "default_prompt_name": None,
    }
    path = Path(folder) / "config_sentence_transformers.json"
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return path


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def normalise_modes(folder: Path) -> None:
    """Give every file the mode a plain `open()` would (0644 under the usual umask 022).

    The weights are written through a private temporary file (mode 0600) and renamed, which would
    leave `model.safetensors` unreadable to everyone else who reads the folder.
    """
    mask = _umask()
    root = Path(folder)
    root.chmod(0o777 & ~mask)
    for path in root.rglob("*"):
        if not path.is_symlink():
            path.chmod((0o777 if path.is_dir() else 0o666) & ~mask)


def finish_model_folder(
    folder: Path, *, base_model: str, config: dict[str, Any], result: dict[str, Any]
) -> Path:
    """Everything a saved model folder carries besides the weights: the model card, the training
    record, `config_sentence_transformers.json`, and ordinary file modes. Returns the card's path."""
    card = write_model_card(folder, base_model=base_model, config=config, result=result)
    write_sentence_transformers_config(folder)
    normalise_modes(folder)
    return card
