"""synthrank: turn a domain corpus into a fine-tuned cross-encoder reranker with no human labels."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("synthrank")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
