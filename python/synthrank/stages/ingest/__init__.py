"""Corpus ingest: read a corpus in any supported format, chunk, dedupe and split it into a run folder."""

from synthrank.stages.ingest.ingest import IngestConfig, detect_format, read_documents, run_ingest
from synthrank.stages.ingest.readers import BadRecord, Document, FieldNames

__all__ = [
    "BadRecord",
    "Document",
    "FieldNames",
    "IngestConfig",
    "detect_format",
    "read_documents",
    "run_ingest",
]
