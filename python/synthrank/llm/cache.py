"""A request cache in SQLite (WAL): each paid response is committed the moment it arrives.

The key hashes everything that decides the answer: endpoint kind, the request body (model,
messages or prompt, sampling parameters) and the prompt-template version. A re-run after Ctrl-C,
`kill -9` or a crash therefore sends only the calls that never completed. The file is portable:
copy it to another machine or point several runs at one file.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

from synthrank.errors import LLMError


def cache_key(kind: str, body: dict[str, Any], template_version: str) -> str:
    """sha256 over a canonical JSON of what determines a reply."""
    blob = json.dumps(
        {"kind": kind, "body": body, "template_version": template_version},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


COLUMNS = "key, kind, response, created"  # of the `responses` table: what `put` writes, `merge` copies


class ResponseCache:
    """Key -> response JSON. `durable=True` also fsyncs each commit (survives a power cut, slower)."""

    def __init__(self, path: Path | str, *, durable: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # autocommit (isolation_level=None): every put is its own committed transaction
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS responses ("
                "key TEXT PRIMARY KEY, kind TEXT NOT NULL, response TEXT NOT NULL, created REAL NOT NULL)"
            )
        except sqlite3.DatabaseError as exc:
            raise LLMError(f"{self.path}: cannot open the LLM cache: {exc}") from exc

    def get(self, key: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, kind: str, response: dict[str, Any]) -> None:
        self._db.execute(
            f"INSERT OR REPLACE INTO responses ({COLUMNS}) VALUES (?, ?, ?, ?)",
            (key, kind, json.dumps(response, ensure_ascii=False, separators=(",", ":")), time.time()),
        )

    def merge(self, source: Path | str) -> int:
        """Add the replies of another cache file (`.sqlite`, or gzipped as `export` writes it) that this
        one lacks; replies already here are kept. Returns how many were added."""
        source = Path(source)
        if not source.is_file():
            raise LLMError(f"{source}: no such LLM cache file")
        plain = source
        if source.suffix == ".gz":
            plain = self.path.with_name(self.path.name + ".merge")
            try:
                with gzip.open(source, "rb") as src, open(plain, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            except (OSError, EOFError) as exc:
                plain.unlink(missing_ok=True)
                raise LLMError(f"{source}: not a gzipped LLM cache: {exc}") from exc
        try:
            self._db.execute("ATTACH ? AS source", (str(plain),))
            try:
                added = self._db.execute(
                    f"INSERT OR IGNORE INTO responses ({COLUMNS}) SELECT {COLUMNS} FROM source.responses"
                ).rowcount
            finally:
                self._db.execute("DETACH source")
        except sqlite3.DatabaseError as exc:
            raise LLMError(f"{source}: not an LLM cache: {exc}") from exc
        finally:
            if plain != source:
                plain.unlink()
        return int(added)

    def export(self, target: Path | str) -> None:
        """A consistent copy of the whole cache in one file, gzipped when `target` ends in `.gz`, for
        `merge` on another machine. Written beside `target` and renamed: an interrupted export leaves
        the previous file whole."""
        target = Path(target)
        snapshot = target.with_name(target.name + ".snapshot")
        snapshot.unlink(missing_ok=True)  # VACUUM INTO will not overwrite a killed export's leftover
        try:
            self._db.execute("VACUUM INTO ?", (str(snapshot),))
        except sqlite3.DatabaseError as exc:
            raise LLMError(f"{target}: cannot write the LLM cache there: {exc}") from exc
        if target.suffix != ".gz":
            snapshot.replace(target)
            return
        partial = target.with_name(target.name + ".part")
        with open(snapshot, "rb") as src, gzip.open(partial, "wb", compresslevel=9) as dst:
            shutil.copyfileobj(src, dst)
        partial.replace(target)
        snapshot.unlink()

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
