"""Near-duplicate clusters of a corpus streamed in batches (ingest): `NearDupIndex`.

`synthrank.native.dedup.near_duplicates` needs every text in memory at once; a corpus streamed from a
10 GB file cannot do that. `NearDupIndex` takes passages batch by batch and keeps ~105 bytes per
passage on MedQuAD (cluster ids, and 32-bit LSH band keys of cluster leaders); the leaders'
signatures go to a scratch file and are read back only to verify candidates. The rule (see
`synthrank.native.reference.dedup.NearDupIndex`, the readable spec): a passage joins the earliest
cluster leader that shares a band key and agrees with its signature on at least `threshold` of the
`num_perm` values, else it leads a new cluster; so every member reaches the threshold with its
leader and clusters never chain. Exact copies share a cluster; passages without shingles (only
punctuation) join only their exact copies. The result does not depend on batch sizes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import numpy as np

from synthrank.errors import InvalidArgumentError
from synthrank.native import _backend, _checks
from synthrank.native.dedup import _shingle_options, _threshold


class NearDupIndex:
    """Add passages batch by batch (`add` returns their exact hashes), then `clusters()`.

    `scratch_path` is a file the native core creates for the leaders' signatures (128 x 4 bytes per
    leader at the default num_perm) and removes: at once on Unix (it stays readable through the open
    handle, and a killed process leaves nothing), else on `close()`. Put it beside the output, not
    in /tmp, which is often memory. Use the index as a context manager, or call `close()`.
    """

    def __init__(
        self,
        scratch_path: str | os.PathLike[str],
        *,
        threshold: float = 0.8,
        num_perm: int = 128,
        shingle_size: int = 5,
        shingle: str = "char",
        seed: int = 0,
        backend: str | None = None,
    ) -> None:
        if not isinstance(scratch_path, str | os.PathLike):
            raise InvalidArgumentError(f"scratch_path: expected a path, got {scratch_path!r}")
        num_perm, shingle_size, shingle = _shingle_options(num_perm, shingle_size, shingle)
        core = _backend.get(backend)
        self._index = _backend.guarded(
            core.NearDupIndex,
            _threshold(threshold),
            num_perm,
            shingle_size,
            shingle,
            _checks.seed(seed),
            str(Path(scratch_path)),
        )

    def __len__(self) -> int:
        return len(self._index)

    def __enter__(self) -> NearDupIndex:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def add(self, texts: Sequence[str], *, threads: int | None = None) -> np.ndarray:
        """Add the next passages; returns their exact hashes (uint64, as `dedup.exact_hashes`)."""
        items = _checks.texts_list("texts", texts)
        return _backend.guarded(self._index.add, items, threads=_checks.threads(threads))

    def clusters(self) -> np.ndarray:
        """Cluster id per passage added so far (int64): the index of its cluster's leader, its smallest."""
        return _backend.guarded(self._index.clusters)

    def leaders(self) -> int:
        """Clusters so far (each has one leader, whose signature is kept)."""
        return self._index.leaders()

    def close(self) -> None:
        """Remove the scratch file; `clusters()` still answers, `add` raises InvalidArgumentError."""
        self._index.close()
