"""FNV-1a 64: the one hash both backends use for texts, shingles and LSH band keys."""

from __future__ import annotations

FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
MASK64 = (1 << 64) - 1


def fnv1a64_bytes(data: bytes) -> int:
    """FNV-1a 64 of raw bytes."""
    h = FNV_OFFSET
    for byte in data:
        h = ((h ^ byte) * FNV_PRIME) & MASK64
    return h


def fnv1a64_str(text: str) -> int:
    """FNV-1a 64 of the UTF-8 bytes of `text`."""
    return fnv1a64_bytes(text.encode("utf-8"))
