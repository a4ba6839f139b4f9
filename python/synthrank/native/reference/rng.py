"""SplitMix64 and the unbiased bounded draw both backends use, so seeded results match bit for bit."""

from __future__ import annotations

MASK64 = (1 << 64) - 1
GOLDEN_GAMMA = 0x9E3779B97F4A7C15


def mix64(z: int) -> int:
    """SplitMix64's output finaliser: a bijection of 64-bit words, also used alone to hash a key."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


class SplitMix64:
    """Steele, Lea & Flood's SplitMix64: a 64-bit state advanced by the golden gamma, then mixed."""

    def __init__(self, seed: int) -> None:
        self.state = seed & MASK64

    def next_u64(self) -> int:
        self.state = (self.state + GOLDEN_GAMMA) & MASK64
        return mix64(self.state)

    def below(self, bound: int) -> int:
        """Uniform integer in [0, bound) by Lemire's multiply-shift with rejection (bound >= 1)."""
        product = self.next_u64() * bound
        low = product & MASK64
        if low < bound:
            # Reject the few low words that would make some results one draw more likely.
            threshold = ((1 << 64) - bound) % bound
            while low < threshold:
                product = self.next_u64() * bound
                low = product & MASK64
        return product >> 64


def derive_seed(seed: int, key: int) -> int:
    """A seed for sub-stream `key` (a stratum, a query index) of a run seeded with `seed`."""
    mixed_key = SplitMix64(key & MASK64).next_u64()
    return SplitMix64((seed & MASK64) ^ mixed_key).next_u64()
