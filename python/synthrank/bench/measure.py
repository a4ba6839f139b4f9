"""Wall time and peak memory of one call, and the guard against timing a debug build.

Peak memory is the growth of the process's resident set size (RSS) over the call: Linux's high-water
mark (VmHWM) is reset through /proc/self/clear_refs just before the call and read after it. Unlike
tracemalloc it sees Rust and NumPy allocations as well as Python objects, and it adds no overhead to
the timed code. Memory the allocator already held from earlier work is reused without growing RSS,
so small numbers are lower bounds; where /proc is missing (not Linux) peak memory is not reported.
"""

from __future__ import annotations

import gc
import re
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from synthrank.errors import SynthrankError

T = TypeVar("T")
_PROC_STATUS = Path("/proc/self/status")
_PROC_CLEAR_REFS = Path("/proc/self/clear_refs")
_RESET_PEAK_RSS = "5"  # see proc(5): clear_refs, "Reset the peak resident set size"


class DebugBuildError(SynthrankError):
    """The native extension was compiled without optimisations, so its timings mean nothing."""


class NativeUnavailableError(SynthrankError):
    """The native extension is not built, so there is nothing native to measure."""


@dataclass(frozen=True)
class Measured(Generic[T]):
    result: T
    seconds: float
    peak_mb: float | None


def _status_kib(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", _PROC_STATUS.read_text(), re.MULTILINE)
    return int(match.group(1)) if match else 0


def _reset_peak_rss() -> bool:
    try:
        _PROC_CLEAR_REFS.write_text(_RESET_PEAK_RSS)
    except OSError:
        return False
    return True


def measure(call: Callable[[], T]) -> Measured[T]:
    """Run `call` once; its result, wall-clock seconds and peak RSS growth in MB (None if unknown)."""
    gc.collect()
    tracks_memory = _reset_peak_rss()
    before = _status_kib("VmRSS") if tracks_memory else 0
    start = time.perf_counter()
    result = call()
    seconds = time.perf_counter() - start
    peak_mb = max(0, _status_kib("VmHWM") - before) / 1024 if tracks_memory else None
    return Measured(result, seconds, peak_mb)


def native_build_profile(native_module: object) -> str:
    """ "release" or "debug" for the loaded `synthrank._native`.

    Asks the module's `build_profile()` when it has one; otherwise reads the shared library's ELF
    section names: a debug (`maturin develop` without --release) build carries `.debug_info`.
    """
    build_profile = getattr(native_module, "build_profile", None)
    if callable(build_profile):
        return str(build_profile())
    library = Path(str(getattr(native_module, "__file__", "")))
    return "debug" if ".debug_info" in _elf_section_names(library) else "release"


def _elf_section_names(library: Path) -> set[str]:
    """Section names of a 64-bit little-endian ELF file; empty for anything else (e.g. macOS)."""
    try:
        data = library.read_bytes()
    except OSError:
        return set()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return set()
    (section_offset,) = struct.unpack_from("<Q", data, 0x28)
    entry_size, count, names_index = struct.unpack_from("<HHH", data, 0x3A)
    (names_offset,) = struct.unpack_from("<Q", data, section_offset + names_index * entry_size + 0x18)
    names = set()
    for i in range(count):
        (name_at,) = struct.unpack_from("<I", data, section_offset + i * entry_size)
        end = data.index(b"\0", names_offset + name_at)
        names.add(data[names_offset + name_at : end].decode("ascii", "replace"))
    return names


def require_release_build(native_module: object) -> None:
    """Raise DebugBuildError unless the native extension is an optimised build."""
    profile = native_build_profile(native_module)
    if profile != "release":
        library = getattr(native_module, "__file__", "?")
        raise DebugBuildError(
            f"synthrank._native ({library}) is a {profile} build; native timings "
            "need `maturin develop --release` (`synthrank bench --allow-debug-build` measures it anyway)"
        )
