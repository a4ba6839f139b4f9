"""synthrank: turn a domain corpus into a fine-tuned cross-encoder reranker with no human labels."""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names __getattr__ below imports on first use, for type checkers and IDEs
    from synthrank.api import Pipeline, RunResult, StageResult, load_config
    from synthrank.errors import ConfigError, SynthrankError
    from synthrank.fusion import FusedReranker, fuse_scores
    from synthrank.run.settings import PipelineConfig

try:
    __version__ = version("synthrank")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

# The Python API, imported on first use so that `import synthrank` stays fast (no torch, no config
# machinery) for the CLI and for tools that only read `__version__`.
_LAZY = {
    "load_config": "synthrank.api",
    "Pipeline": "synthrank.api",
    "RunResult": "synthrank.api",
    "StageResult": "synthrank.api",
    "PipelineConfig": "synthrank.run.settings",
    "SynthrankError": "synthrank.errors",
    "ConfigError": "synthrank.errors",
    "FusedReranker": "synthrank.fusion",
    "fuse_scores": "synthrank.fusion",
}

__all__ = [
    "ConfigError",
    "FusedReranker",
    "Pipeline",
    "PipelineConfig",
    "RunResult",
    "StageResult",
    "SynthrankError",
    "__version__",
    "fuse_scores",
    "load_config",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
    else:
        raise AttributeError(f"module 'synthrank' has no attribute {name!r}")
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
