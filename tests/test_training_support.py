"""Builders shared by the training and evaluation tests: a tiny random BERT and a tiny run folder."""

from __future__ import annotations

import json
import random
from pathlib import Path

from synthrank.models import DEFAULT_RERANKER_START, resolve_model
from synthrank.records import Passage, Query, RunLayout, TrainGroup, write_jsonl_atomic

TOPICS = [
    "asthma",
    "diabetes",
    "glaucoma",
    "migraine",
    "anemia",
    "arthritis",
    "psoriasis",
    "measles",
    "malaria",
    "scoliosis",
    "gout",
    "lupus",
    "eczema",
    "hepatitis",
    "rabies",
    "tetanus",
    "cholera",
    "dengue",
    "mumps",
    "rickets",
    "scurvy",
    "tinnitus",
    "vertigo",
    "sciatica",
]
ASPECTS = ["symptoms", "treatment", "causes"]


def tiny_model(folder: Path, seed: int = 0) -> Path:
    """A randomly initialised 2-layer BERT cross-encoder with the MiniLM tokenizer (trains in seconds)."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(DEFAULT_RERANKER_START))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        num_labels=1,
    )
    torch.manual_seed(seed)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def passage_text(topic: str, aspect: str) -> str:
    return (
        f"The {aspect} of {topic} are described here. {topic} {aspect} information for patients with {topic}."
    )


def tiny_run(root: Path, *, n_negatives: int = 6, heldout_topics: int = 4, seed: int = 0) -> RunLayout:
    """A run folder with passages, split, queries, train groups and a BEIR dev set.

    Held-out topics carry a real question in meta and have no training group, like held-out MedQuAD docs.
    """
    layout = RunLayout(root)
    rng = random.Random(seed)
    passages = [
        Passage(
            f"{t}#{i}",
            t,
            passage_text(t, a),
            title=t.title(),
            meta={"question": f"What are the {a} of {t} ?"},
        )
        for t in TOPICS
        for i, a in enumerate(ASPECTS)
    ]
    write_jsonl_atomic(layout.passages, passages)
    heldout = TOPICS[-heldout_topics:]
    layout.split.write_text(json.dumps({"heldout_doc_ids": heldout, "excluded_doc_ids": []}))
    train_passages = [p for p in passages if p.doc_id not in heldout]
    queries, groups = [], []
    for p in train_passages:
        aspect = p.text.split()[1]
        qid = f"q-{p.passage_id}"
        text = f"{p.doc_id} {aspect}"
        queries.append(Query(qid, p.doc_id, p.passage_id, text, "keywords", "v1", "test"))
        negs = rng.sample([o for o in train_passages if o.passage_id != p.passage_id], n_negatives)
        groups.append(
            TrainGroup(
                text, [p.text], [n.text for n in negs], qid, [p.passage_id], [n.passage_id for n in negs]
            )
        )
    write_jsonl_atomic(layout.queries, queries)
    write_jsonl_atomic(layout.train_groups, groups)
    dev = layout.dev
    (dev / "qrels").mkdir(parents=True)
    dev_passages = train_passages[:12]
    with open(dev / "corpus.jsonl", "w") as fh:
        for p in dev_passages:
            fh.write(json.dumps({"_id": p.passage_id, "title": p.title, "text": p.text}) + "\n")
    with open(dev / "queries.jsonl", "w") as fh:
        for q in queries[:12]:
            fh.write(json.dumps({"_id": q.query_id, "text": q.text}) + "\n")
    with open(dev / "qrels" / "dev.tsv", "w") as fh:
        fh.write("query-id\tcorpus-id\tscore\n")
        for q in queries[:12]:
            fh.write(f"{q.query_id}\t{q.passage_id}\t2\n")
    return layout
