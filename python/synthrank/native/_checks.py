"""Argument checks shared by the public wrappers; every message names the argument at fault."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from synthrank.errors import InvalidArgumentError

UINT64_LIMIT = 1 << 64


def texts_list(name: str, texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise InvalidArgumentError(f"{name}: expected a sequence of strings, got a single str")
    items = list(texts)
    for position, text in enumerate(items):
        if not isinstance(text, str):
            raise InvalidArgumentError(f"{name}[{position}]: expected str, got {type(text).__name__}")
    return items


def integer(name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise InvalidArgumentError(f"{name}: expected an integer, got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise InvalidArgumentError(f"{name}: must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise InvalidArgumentError(f"{name}: must be <= {maximum}, got {value}")
    return value


def seed(value: Any) -> int:
    return integer("seed", value, minimum=0, maximum=UINT64_LIMIT - 1)


def threads(value: int | None) -> int | None:
    return None if value is None else integer("threads", value, minimum=0)


def real(name: str, value: Any, *, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise InvalidArgumentError(f"{name}: expected a number, got {value!r}")
    number = float(value)
    if not np.isfinite(number):
        raise InvalidArgumentError(f"{name}: must be finite, got {number}")
    return number


def optional_array(name: str, value: Any, dtype: type, ndim: int) -> np.ndarray | None:
    return None if value is None else array(name, value, dtype, ndim)


def array(name: str, value: Any, dtype: type, ndim: int) -> np.ndarray:
    """`value` as a C-contiguous array of `dtype`; integers widen safely, floats narrow within kind."""
    if value is None:
        raise InvalidArgumentError(f"{name}: required, got None")
    arr = np.asarray(value)
    target = np.dtype(dtype)
    if arr.size == 0 and arr.dtype == np.float64 and target != arr.dtype:
        arr = arr.astype(target)  # np.asarray([]) is float64 whatever the caller meant
    widening_only = np.can_cast(arr.dtype, target, casting="safe")
    same_kind_float = target.kind == "f" and np.can_cast(arr.dtype, target, casting="same_kind")
    if arr.dtype != target and not (widening_only or same_kind_float):
        raise InvalidArgumentError(f"{name}: expected dtype {target.name}, got {arr.dtype.name}")
    if arr.ndim != ndim:
        raise InvalidArgumentError(f"{name}: expected a {ndim}-D array, got shape {arr.shape}")
    return np.ascontiguousarray(arr, dtype=target)


def same_shape(name: str, arr: np.ndarray | None, shape: tuple[int, ...], other: str) -> None:
    if arr is not None and arr.shape != shape:
        raise InvalidArgumentError(f"{name}: shape {arr.shape} does not match {other} shape {shape}")
