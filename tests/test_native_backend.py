"""`_backend.Core` is the one contract of the native core and its twin: both provide every member,
with the same parameter names, kinds and defaults. mypy checks the types against `Core`; parameter
names it does not compare, and the wrappers pass `threads=` and the mining options by name."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest

from synthrank.native import _backend, reference

Parameters = list[tuple[str, Any, Any]]


def _public(names: Any) -> set[str]:
    return {name for name in names if not name.startswith("_")}


def _parameters(function: Callable[..., Any]) -> Parameters:
    """(name, kind, default) of each parameter, `self` left out (native methods make it positional-only)."""
    signature = inspect.signature(function)
    return [(p.name, p.kind, p.default) for p in signature.parameters.values() if p.name != "self"]


def _contract() -> Iterator[tuple[str, Parameters]]:
    """Each member of `Core` as a dotted path (`Chunker.chunk` for a method) with its parameters."""
    for name in sorted(_public(vars(_backend.Core))):
        member = vars(_backend.Core)[name]
        if not isinstance(member, property):
            yield name, _parameters(member)
            continue
        assert member.fget is not None
        constructor = typing.get_type_hints(member.fget)["return"]  # a protocol with __call__
        yield name, _parameters(constructor.__call__)
        instance = typing.get_type_hints(constructor.__call__)["return"]
        for method in sorted(_public(vars(instance))):
            yield f"{name}.{method}", _parameters(vars(instance)[method])


def _resolve(core: object, path: str) -> Callable[..., Any]:
    target: Any = core
    for part in path.split("."):
        target = getattr(target, part)
    return typing.cast(Callable[..., Any], target)


def _check_conforms(core: ModuleType) -> None:
    contract = list(_contract())
    assert len(contract) > 2, "the contract lists the core's functions"
    for path, expected in contract:
        assert hasattr(core, path.split(".")[0]), f"{core.__name__} lacks {path}"
        assert _parameters(_resolve(core, path)) == expected, f"{core.__name__}.{path}"
    # and nothing public that the contract does not list (build_profile is the native build's own)
    listed = {path for path, _ in contract if "." not in path}
    assert _public(getattr(core, "__all__", dir(core))) - {"build_profile"} == listed


def test_the_twin_conforms_to_the_core_contract() -> None:
    _check_conforms(reference)
    assert _backend.get("python") is reference


@pytest.mark.native
def test_the_native_module_conforms_to_the_core_contract() -> None:
    from synthrank import _native

    _check_conforms(_native)
    assert _backend.get("native") is _native


def test_the_contract_check_sees_a_renamed_parameter() -> None:
    def normalize(items: list[str], threads: int | None = None) -> list[str]:
        return items

    twin_with_a_rename = ModuleType("twin_with_a_rename")
    twin_with_a_rename.__dict__.update({name: getattr(reference, name) for name in reference.__all__})
    twin_with_a_rename.normalize = normalize  # type: ignore[attr-defined]
    with pytest.raises(AssertionError, match=r"twin_with_a_rename\.normalize"):
        _check_conforms(twin_with_a_rename)
