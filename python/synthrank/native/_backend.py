"""Choose the implementation behind the public functions: the native core or the Python twin.

This is the only module that imports `synthrank._native`. The default comes from the environment
variable SYNTHRANK_BACKEND ("native" unless set); when the extension is missing, "native" falls back
to the twin with one warning. A panic inside the native core reaches Python as PyO3's
PanicException (a BaseException); `call` turns it into `NativePanicError` so callers can catch it.
A text with a lone surrogate becomes InvalidArgumentError (the twin may accept it where UTF-8 is
not needed; the native core never can).
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from synthrank.errors import InvalidArgumentError, NativePanicError
from synthrank.native import reference

BACKENDS = ("native", "python")
ENV_VAR = "SYNTHRANK_BACKEND"


@functools.cache
def _native_module() -> ModuleType | None:
    try:
        from synthrank import _native
    except ImportError:
        warnings.warn(
            "synthrank._native is not built; using the slower pure-Python backend "
            "(build it with `maturin develop --release`)",
            RuntimeWarning,
            stacklevel=3,
        )
        return None
    return _native


def native_available() -> bool:
    return _native_module() is not None


def get(backend: str | None = None) -> ModuleType:
    """The module implementing `backend` ("native" or "python"; None: $SYNTHRANK_BACKEND or native)."""
    if backend is None:
        name = _checked(os.environ.get(ENV_VAR, "native"), ENV_VAR)
    else:
        name = _checked(backend, "backend")
    if name == "native":
        native = _native_module()
        if native is not None:
            return native
    return reference


@contextmanager
def selected(backend: str | None) -> Iterator[None]:
    """`backend` for every native-core call inside (as SYNTHRANK_BACKEND), restored afterwards; None
    leaves the environment's choice. `synthrank run` and `Pipeline.run` apply `[run] backend` so."""
    if backend is None:
        yield
        return
    saved = os.environ.get(ENV_VAR)
    os.environ[ENV_VAR] = _checked(backend, "backend")
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(ENV_VAR, None)
        else:
            os.environ[ENV_VAR] = saved


def _checked(name: str, source: str) -> str:
    if name not in BACKENDS:
        raise InvalidArgumentError(f"{source}: expected one of {', '.join(BACKENDS)}, got {name!r}")
    return name


def is_panic(error: BaseException) -> bool:
    return type(error).__name__ == "PanicException"


def call(backend: str | None, function: str, *args: Any, **kwargs: Any) -> Any:
    """Call `function` of the chosen backend, turning a native panic into NativePanicError."""
    implementation: Callable[..., Any] = getattr(get(backend), function)
    return guarded(implementation, *args, **kwargs)


def guarded(implementation: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return implementation(*args, **kwargs)
    except UnicodeEncodeError as error:
        # Python strings may hold lone surrogates; UTF-8 (and so the native core) cannot.
        bad = error.object[error.start : error.end]
        raise InvalidArgumentError(f"texts: lone surrogate {bad!r} cannot be encoded as UTF-8") from error
    except BaseException as error:
        if is_panic(error):
            name = getattr(implementation, "__qualname__", repr(implementation))
            raise NativePanicError(
                f"the native core panicked in {name}: {error}; please report it"
            ) from error
        raise
