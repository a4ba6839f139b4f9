"""Test sets for reranking: each is queries + passage texts + qrels + one first-stage top-k per query.

Every system reranks the same `candidates` lists, so differences come from the reranker alone.
Sources: a BEIR folder (its `candidates.tsv` when present, else BM25 top-k over its corpus), TREC DL
2019 (the BM25 top-100 shipped in `trec-dl-19.tar.gz`), and the in-domain set of a run folder: its
held-out documents' real questions (e.g. MedQuAD) when the corpus has them, else the synthetic test
set the testset stage wrote into `test/` (see `synthrank.stages.testset`).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import tarfile
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

import numpy as np

from synthrank.errors import ConfigError, EmptyOutputError, InputFormatError, InvalidArgumentError, json_error
from synthrank.records import Passage, RunLayout, read_jsonl

if TYPE_CHECKING:
    from synthrank.run.settings import PipelineConfig

TREC_DL_19_ARCHIVE = Path("..") / "shared" / "data" / "trec-dl-19.tar.gz"
TREC_DL_19_NAMES = ("trec-dl-19", "trec-dl-2019")
DEV_NAME = "dev"  # the run's synthetic dev set, the one place settings may be compared and picked
NAMED_DATASETS = ("indomain", DEV_NAME, *TREC_DL_19_NAMES)  # anything else is a BEIR folder
# what kind of in-domain test set a report shows (EvalDataset.meta["kind"])
KIND_REAL = "real held-out questions"
KIND_SYNTHETIC = "synthetic: LLM-written queries, LLM-graded"
KIND_DEV = "the synthetic dev set: for picking settings, not a test"
TESTSET_INFO = "testset.json"  # in test/: written last, so its presence means the folder is complete


@dataclass
class EvalDataset:
    """What a reranking evaluation needs; `passages` holds the text of every candidate."""

    name: str
    queries: dict[str, str]
    passages: dict[str, str]
    qrels: dict[str, dict[str, int]]
    candidates: dict[str, list[str]]  # first-stage order, best first
    relevance_level: int = 1  # binary metrics count grade >= this as relevant
    first_stage: str = "bm25"
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def n_pairs(self) -> int:
        return sum(len(c) for c in self.candidates.values())

    def first_stage_run(self) -> dict[str, dict[str, float]]:
        """The first-stage order as a run (descending pseudo-scores)."""
        return {q: {d: float(len(c) - i) for i, d in enumerate(c)} for q, c in self.candidates.items()}


def _jsonl_lines(fh: IO[str], path: str) -> Iterator[tuple[int, dict]]:
    for lineno, line in enumerate(fh, start=1):
        if line.strip():
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputFormatError(path, lineno, f"invalid JSON: {json_error(exc)}") from exc


def _read_beir_texts(fh: IO[str], path: str, with_title: bool) -> dict[str, str]:
    out = {}
    for lineno, row in _jsonl_lines(fh, path):
        if "_id" not in row or "text" not in row:
            raise InputFormatError(path, lineno, "expected fields _id and text")
        title = row.get("title") or ""
        out[str(row["_id"])] = f"{title} {row['text']}".strip() if with_title and title else row["text"]
    return out


def _read_tsv(fh: IO[str], path: str) -> Iterator[tuple[int, list[str]]]:
    for lineno, row in enumerate(csv.reader(fh, delimiter="\t"), start=1):
        if not row or (lineno == 1 and row[0] in ("query-id", "qid", "query_id")):
            continue
        if len(row) < 3:
            raise InputFormatError(path, lineno, f"expected 3 tab-separated columns, got {len(row)}")
        yield lineno, row


def _read_qrels(fh: IO[str], path: str) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    for lineno, (qid, did, score, *_) in _read_tsv(fh, path):
        try:
            qrels[qid][did] = int(float(score))
        except ValueError as exc:
            raise InputFormatError(path, lineno, f"score {score!r} is not a number") from exc
    return dict(qrels)


def _read_candidates(fh: IO[str], path: str) -> dict[str, list[str]]:
    ranks: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for lineno, (qid, did, rank, *_) in _read_tsv(fh, path):
        try:
            ranks[qid].append((int(rank), did))
        except ValueError as exc:
            raise InputFormatError(path, lineno, f"rank {rank!r} is not an integer") from exc
    return {q: [d for _, d in sorted(pairs)] for q, pairs in ranks.items()}


def bm25_candidates(
    queries: dict[str, str], passages: dict[str, str], top_k: int = 100
) -> dict[str, list[str]]:
    """BM25 (bm25s, Lucene variant, English stop words) top-k passage ids per query, equal scores in
    passage order."""
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.WARNING)  # its import sets it to DEBUG, flooding run logs
    ids = list(passages)
    qids = list(queries)
    k = min(top_k, len(ids))
    if not qids or k == 0:
        return {q: [] for q in qids}
    retriever = bm25s.BM25()
    retriever.index(
        bm25s.tokenize([passages[i] for i in ids], stopwords="en", show_progress=False), show_progress=False
    )
    tokens = bm25s.tokenize([queries[q] for q in qids], stopwords="en", show_progress=False, return_ids=False)
    found: dict[str, list[str]] = {}
    for q, terms in zip(qids, tokens, strict=True):
        scores = retriever.get_scores(terms) if terms else np.zeros(len(ids))
        found[q] = [ids[j] for j in top_k_indices(scores, k) if scores[j] > 0]
    return found


def top_k_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """The k highest scores' indices, best first, ties in index order. bm25s's own top-k leaves ties
    in whatever order numpy's unstable partition and sort give, which numpy does not promise to
    keep; the BM25 row and the lists every system reranks must not depend on it."""
    pool = np.arange(len(scores))
    if k < len(scores):  # every score tied with the k-th, so the cut also breaks ties by index
        pool = np.flatnonzero(scores >= np.partition(scores, -k)[-k])
    return pool[np.lexsort((pool, -scores[pool]))][:k]


def load_beir(
    folder: Path | str, split: str = "test", top_k: int = 100, name: str | None = None
) -> EvalDataset:
    """A BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv, optional candidates.tsv."""
    folder = Path(folder)
    qrels_path = folder / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        found = sorted(p.stem for p in (folder / "qrels").glob("*.tsv"))
        if len(found) != 1:
            raise InvalidArgumentError(f"{qrels_path}: not found (qrels splits there: {found or 'none'})")
        qrels_path = folder / "qrels" / f"{found[0]}.tsv"
    for needed in ("corpus.jsonl", "queries.jsonl"):
        if not (folder / needed).is_file():
            raise InvalidArgumentError(f"{folder / needed}: not found; expected a BEIR folder")
    with open(qrels_path, encoding="utf-8") as fh:
        qrels = _read_qrels(fh, str(qrels_path))
    with open(folder / "queries.jsonl", encoding="utf-8") as fh:
        queries = {
            q: t for q, t in _read_beir_texts(fh, str(folder / "queries.jsonl"), False).items() if q in qrels
        }
    with open(folder / "corpus.jsonl", encoding="utf-8") as fh:
        passages = _read_beir_texts(fh, str(folder / "corpus.jsonl"), True)
    cand_path = folder / "candidates.tsv"
    if cand_path.is_file():
        with open(cand_path, encoding="utf-8") as fh:
            candidates = {
                q: c[:top_k] for q, c in _read_candidates(fh, str(cand_path)).items() if q in queries
            }
        first_stage = "candidates.tsv"
    else:
        candidates = bm25_candidates(queries, passages, top_k)
        first_stage = "bm25"
    return EvalDataset(name or folder.name, queries, passages, qrels, candidates, first_stage=first_stage)


def load_dev(layout: RunLayout, top_k: int, why: str) -> EvalDataset:
    """The run's synthetic dev set (LLM-written queries of documents mine held out of training, their
    LLM-graded positives), BM25 top-k over its passages; `why` says in an error what needed it."""
    if not (layout.dev / "qrels").is_dir():
        raise EmptyOutputError(
            f"{layout.dev}: no synthetic dev set ({why}): run mine with [mine] dev_fraction > 0"
        )
    dev = load_beir(layout.dev, split="dev", top_k=top_k, name=DEV_NAME)
    dev.candidates = {q: c for q, c in dev.candidates.items() if c and q in dev.qrels}
    dev.meta = {"kind": KIND_DEV}
    if not dev.candidates:
        raise EmptyOutputError(
            f"{layout.dev}: the synthetic dev set has no query with candidates ({why}): raise [mine] "
            "dev_fraction or the number of queries"
        )
    return dev


def load_trec_dl19(archive: Path | str = TREC_DL_19_ARCHIVE, top_k: int = 100) -> EvalDataset:
    """TREC DL 2019 passages from its archive, read in memory: BM25 top-100 rerank set.

    Binary metrics count grade >= 2 as relevant (trec_eval -l 2), the track's convention.
    """
    archive = Path(archive)
    if not archive.is_file():
        raise InvalidArgumentError(f"{archive}: TREC DL 2019 archive not found")
    texts: dict[str, str] = {}
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar.getmembers():
            if member.isfile():
                raw = tar.extractfile(member)
                assert raw is not None
                texts[member.name.split("/", 1)[-1]] = raw.read().decode("utf-8")
    where = f"{archive}:"

    def open_member(name: str) -> io.StringIO:
        if name not in texts:
            raise InputFormatError(archive, None, f"member {name} missing")
        return io.StringIO(texts[name])

    qrels = _read_qrels(open_member("qrels/test.tsv"), where + "qrels/test.tsv")
    queries = _read_beir_texts(open_member("queries.jsonl"), where + "queries.jsonl", False)
    candidates = {
        q: c[:top_k]
        for q, c in _read_candidates(open_member("candidates.tsv"), where + "candidates.tsv").items()
    }
    corpus = _read_beir_texts(open_member("corpus.jsonl"), where + "corpus.jsonl", True)
    needed = {d for c in candidates.values() for d in c}
    passages = {d: corpus[d] for d in needed}
    return EvalDataset(
        "trec-dl-19", queries, passages, qrels, candidates, relevance_level=2, first_stage="bm25 (pyserini)"
    )


def heldout_questions(
    passages: Iterable[Passage], heldout_doc_ids: set[str]
) -> dict[str, tuple[str, list[str]]]:
    """{question text: (first doc id, passage ids of that question's own answer)} on held-out docs.

    A passage's question is `meta["question"]`; its answer is every held-out passage that carries
    the same question in the same document. A question asked in several held-out documents keeps
    all their answers as relevant.
    """
    answers: dict[str, tuple[str, list[str]]] = {}
    for p in passages:
        question = " ".join(p.meta.get("question", "").split())
        if p.doc_id in heldout_doc_ids and question:
            answers.setdefault(question, (p.doc_id, []))[1].append(p.passage_id)
    return answers


def load_indomain(
    layout: RunLayout, top_k: int = 100, max_queries: int | None = None, seed: int = 0
) -> EvalDataset:
    """Held-out real questions of a run: BM25 top-k over all of the run's passages."""
    import random

    heldout = heldout_doc_ids(layout)
    all_passages = list(read_jsonl(layout.passages, Passage))
    answers = heldout_questions(all_passages, heldout)
    if not answers:
        raise InvalidArgumentError(
            f"{layout.passages}: no held-out passage carries meta.question; the in-domain set needs "
            "held-out documents with their real questions (e.g. MedQuAD)"
        )
    questions = sorted(answers)
    if max_queries is not None and len(questions) > max_queries:
        questions = sorted(random.Random(seed).sample(questions, max_queries))
    queries = {f"q{i}": q for i, q in enumerate(questions)}
    qrels = {qid: dict.fromkeys(answers[q][1], 1) for qid, q in queries.items()}
    passages = {p.passage_id: p.reranker_text for p in all_passages}
    candidates = bm25_candidates(queries, passages, top_k)
    needed = {d for c in candidates.values() for d in c}
    return EvalDataset(
        "indomain", queries, {d: passages[d] for d in needed}, qrels, candidates, meta={"kind": KIND_REAL}
    )


def heldout_doc_ids(layout: RunLayout) -> set[str]:
    for path in (layout.passages, layout.split):
        if not path.is_file():
            raise InvalidArgumentError(f"{path}: not found; the in-domain set needs an ingested run folder")
    split = json.loads(layout.split.read_text(encoding="utf-8"))
    return set(map(str, split.get("heldout_doc_ids", [])))


def has_real_questions(layout: RunLayout) -> bool:
    """Whether some held-out passage carries a real question (what `load_indomain` evaluates on)."""
    heldout = heldout_doc_ids(layout)
    with open(layout.passages, encoding="utf-8") as fh:
        for line in fh:
            if '"question"' not in line:  # cheap: most corpora have no such meta key at all
                continue
            row = json.loads(line)
            question = str((row.get("meta") or {}).get("question", ""))
            if str(row.get("doc_id")) in heldout and question.strip():
                return True
    return False


def load_synthetic(
    layout: RunLayout, top_k: int = 100, max_queries: int | None = None, seed: int = 0
) -> EvalDataset:
    """The synthetic in-domain test set the testset stage wrote into `test/`."""
    import random

    info_path = layout.test / TESTSET_INFO
    if not info_path.is_file():
        raise EmptyOutputError(
            f"{layout.passages}: no held-out passage carries a real question (meta.question) and "
            f"{layout.test} holds no synthetic test set yet: `synthrank run CONFIG` builds it (stage "
            "testset, [evaluate] synthetic_queries > 0); or give a BEIR folder in [evaluate] datasets "
            "(--dataset), or leave indomain out"
        )
    info = json.loads(info_path.read_text(encoding="utf-8"))
    ds = load_beir(layout.test, "test", top_k, name="indomain")
    if max_queries is not None and len(ds.queries) > max_queries:
        keep = set(random.Random(seed).sample(sorted(ds.queries), max_queries))
        ds.queries = {q: t for q, t in ds.queries.items() if q in keep}
        ds.qrels = {q: g for q, g in ds.qrels.items() if q in keep}
        ds.candidates = {q: c for q, c in ds.candidates.items() if q in keep}
    ds.first_stage = str(info.get("first_stage", ds.first_stage))
    ds.relevance_level = int(info.get("relevance_level", 1))
    ds.meta = {"kind": KIND_SYNTHETIC}
    return ds


def load_indomain_any(
    layout: RunLayout, top_k: int = 100, max_queries: int | None = None, seed: int = 0
) -> EvalDataset:
    """The in-domain set: real held-out questions when the corpus has them, else the synthetic one."""
    if has_real_questions(layout):
        return load_indomain(layout, top_k, max_queries, seed)
    return load_synthetic(layout, top_k, max_queries, seed)


def _beir_problem(folder: Path, split: str) -> str | None:
    """What keeps `folder` from loading as a BEIR folder (None: nothing)."""
    if not folder.is_dir():
        return f"{folder} is not a folder"
    missing = [name for name in ("corpus.jsonl", "queries.jsonl") if not (folder / name).is_file()]
    if missing:
        return f"{folder} lacks {' and '.join(missing)}"
    if not (folder / "qrels" / f"{split}.tsv").is_file() and len(list((folder / "qrels").glob("*.tsv"))) != 1:
        return f"{folder} lacks qrels/{split}.tsv ([evaluate] beir_split)"
    return None


def check_datasets(config: PipelineConfig, *, ingested: bool) -> None:
    """Fail before any stage runs when a data set in `[evaluate] datasets` cannot be obtained.

    `ingested`: the run folder's corpus is current (ingest will not run again), so the in-domain
    check can look at the held-out passages themselves instead of the corpus settings.
    """
    cfg = config.evaluate
    where = f"{config.source or 'config'}: [evaluate]"
    for spec in cfg.datasets:
        if spec in TREC_DL_19_NAMES:
            if not Path(cfg.trec_dl_archive).is_file():
                raise ConfigError(
                    f"{where} trec_dl_archive: {cfg.trec_dl_archive} not found (datasets has {spec!r}); "
                    "give the path of trec-dl-19.tar.gz or leave trec-dl-19 out of datasets"
                )
        elif spec == DEV_NAME:
            if config.mine.dev_fraction <= 0:
                raise ConfigError(
                    f"{where} datasets: dev is the synthetic dev set, which mine writes only with "
                    "[mine] dev_fraction > 0"
                )
        elif spec == "indomain":
            problem = _indomain_problem(config, ingested=ingested)
            if problem:
                raise ConfigError(
                    f"{where} datasets: indomain: {problem}; or give a BEIR folder, or leave indomain out"
                )
        else:
            problem = _beir_problem(Path(spec), cfg.beir_split)
            if problem:
                raise ConfigError(
                    f"{where} datasets: {spec!r} is neither indomain, dev, trec-dl-19 nor a BEIR folder "
                    f"(corpus.jsonl, queries.jsonl, qrels/{cfg.beir_split}.tsv): {problem}"
                )


def _indomain_problem(config: PipelineConfig, *, ingested: bool) -> str | None:
    from synthrank.stages.ingest.medquad import is_medquad

    layout = RunLayout(config.run.dir)
    synthetic = config.evaluate.synthetic_queries > 0
    if ingested and layout.passages.is_file() and layout.split.is_file():
        if has_real_questions(layout):
            return None
        if not heldout_doc_ids(layout):
            return f"{layout.split} holds out no document: set [corpus] heldout_fraction > 0"
        if not synthetic:
            return (
                "the corpus has no real held-out questions and [evaluate] synthetic_queries = 0: set it > 0"
            )
        return None
    if config.corpus.heldout_fraction == 0:
        return "[corpus] heldout_fraction = 0 holds out no document to test on: set it > 0"
    corpus = config.corpus.path
    questions = config.corpus.format == "medquad" or "question" in config.corpus.meta_fields
    questions = questions or (corpus is not None and Path(corpus).exists() and is_medquad(Path(corpus)))
    if not synthetic and not questions:
        return (
            "the corpus carries no real questions (MedQuAD, or a `question` field in [corpus] meta_fields) "
            "and [evaluate] synthetic_queries = 0: set it > 0"
        )
    return None
