"""A dev set that costs no LLM call, for picking the fusion weight when the synthetic one is too small.

Inverse-Cloze pseudo-queries, as the warm start makes them: a sentence cut out of a training
passage, whose one relevant passage is that passage without the sentence; BM25 top-k over the
training passages (never the held-out test documents) as the first stage. Passages the warm start
cut its own pseudo-queries from are left out, so no query was trained on.
"""

from __future__ import annotations

import logging

import numpy as np

from synthrank.pseudo_queries import cut_sentence, pseudo_query_sources
from synthrank.records import Passage, RunLayout, read_jsonl
from synthrank.stages.evaluate.datasets import KIND_DEV, EvalDataset, bm25_candidates

log = logging.getLogger(__name__)

PSEUDO_DEV_NAME = "pseudo-dev"
MAX_PASSAGES = 100_000  # BM25 ranks over at most this many training passages


def load_pseudo_dev(layout: RunLayout, top_k: int, n_queries: int, seed: int) -> EvalDataset:
    """Up to `n_queries` pseudo-queries whose own passage BM25 puts in its top-k (the others rank
    the same at every weight); an empty data set when the run has no sentence to cut."""
    empty = EvalDataset(PSEUDO_DEV_NAME, {}, {}, {}, {}, meta={"kind": KIND_DEV})
    if not (layout.split.is_file() and layout.passages.is_file()):
        return empty
    withheld = layout.withheld_doc_ids()
    passages = [p for p in read_jsonl(layout.passages, Passage) if p.doc_id not in withheld]
    rng = np.random.default_rng([seed, 7])
    if len(passages) > MAX_PASSAGES:  # a weight, not a benchmark: a sample of the corpus ranks enough
        passages = [passages[i] for i in np.sort(rng.choice(len(passages), MAX_PASSAGES, replace=False))]
    used = pseudo_query_sources(layout)
    sources = [i for i, p in enumerate(passages) if p.passage_id not in used]
    order = rng.permutation(len(sources))
    texts = {p.passage_id: p.reranker_text for p in passages}
    queries: dict[str, str] = {}
    own: dict[str, str] = {}
    # BM25 misses some own passages: cut twice as many as wanted, keep the first it finds. Each source
    # passage is indexed without its sentence (the task is to find where it came from, not to match it)
    for i in order[: 2 * n_queries].tolist():
        p = passages[sources[i]]
        cut = cut_sentence(p.text, rng)
        if cut is not None:
            qid = f"pseudo{len(queries)}"
            queries[qid], own[qid] = cut[0], p.passage_id
            texts[p.passage_id] = Passage(p.passage_id, p.doc_id, cut[1], p.title).reranker_text
    found = bm25_candidates(queries, texts, top_k)
    candidates = {q: hits for q, hits in found.items() if own[q] in hits}
    candidates = dict(list(candidates.items())[:n_queries])
    needed = {d for c in candidates.values() for d in c}
    log.info(
        "pseudo-dev: %d of %d pseudo-queries have their own passage in BM25's top %d",
        len(candidates),
        len(queries),
        top_k,
    )
    return EvalDataset(
        PSEUDO_DEV_NAME,
        {q: queries[q] for q in candidates},
        {d: texts[d] for d in needed},
        {q: {own[q]: 1} for q in candidates},
        candidates,
        first_stage="bm25",
        meta={"kind": KIND_DEV},
    )
