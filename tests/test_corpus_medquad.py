"""MedQuAD from the real release in ../shared/data: counts, ids, metadata, split by focus."""

from __future__ import annotations

import json
import tarfile
from collections import Counter
from pathlib import Path

import pytest

from synthrank.errors import InputFormatError
from synthrank.records import Passage, RunLayout, read_jsonl
from synthrank.stages.ingest import Document, IngestConfig, detect_format, run_ingest
from synthrank.stages.ingest.medquad import read_medquad

RELEASE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "medquad-xml.tar.gz"
needs_release = pytest.mark.skipif(not RELEASE.is_file(), reason="../shared/data is not beside the repo")

# One file of each XML schema the release mixes: <Document id>, <doc docid> and <DiseaseFile fid>.
SAMPLE_MEMBERS = (
    "5_NIDDK_QA/0000001.xml",
    "6_NINDS_QA/0000007.xml",
    "9_CDC_QA/0000397.xml",
    "3_GHR_QA/0000001.xml",
)


@needs_release
def test_release_yields_every_answer_with_text_once() -> None:
    docs = [d for d in read_medquad(RELEASE) if isinstance(d, Document)]
    # The data README says 16,407; counting non-empty <Answer> elements in the archive gives 16,423.
    assert len(docs) == 16_423
    assert len({d.doc_id for d in docs}) == len(docs)
    sources = Counter(d.meta["source"] for d in docs)
    assert set(sources) == {
        "GHR",
        "GARD",
        "NIDDK",
        "NINDS",
        "MPlusHealthTopics",
        "NIHSeniorHealth",
        "CancerGov",
        "NHLBI",
        "CDC",
    }
    assert all(d.text.strip() and d.meta["question"] for d in docs)
    assert sum(not d.meta["focus"] for d in docs) == 14  # one CDC file has an empty <Focus>


@pytest.fixture
def medquad_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "MedQuAD"
    with tarfile.open(RELEASE) as archive:
        for name in SAMPLE_MEMBERS:
            archive.extract(name, folder, filter="data")
    return folder


@needs_release
def test_folder_reader_keeps_metadata_for_evaluation(medquad_folder: Path) -> None:
    assert detect_format(medquad_folder) == "medquad" and detect_format(RELEASE) == "medquad"
    docs = {d.doc_id: d for d in read_medquad(medquad_folder)}
    ninds = docs["NINDS_0000007_Sec1"]  # the <doc docid corpus> variant
    assert ninds.meta["question"] == "what is holmes-adie syndrome ?"
    assert ninds.meta["focus"] == ninds.title == "Holmes-Adie"
    assert ninds.meta["qtype"] == "information" and ninds.meta["source"] == "NINDS"
    assert docs["CDC_0000397_Sec1"].meta["focus"] == "Parasites - Taeniasis"  # <DiseaseFile fid>
    assert set(ninds.meta) == {"medquad_doc_id", "source", "url", "focus", "qid", "qtype", "question"}


@needs_release
def test_ingest_holds_out_whole_focus_groups(medquad_folder: Path, tmp_path: Path) -> None:
    layout = RunLayout(tmp_path / "run")
    counts = run_ingest(layout, IngestConfig(heldout_fraction=0.5, seed=3), medquad_folder)
    passages = list(read_jsonl(layout.passages, Passage))
    split = json.loads(layout.split.read_text())
    assert split["heldout_group"] == "focus"  # MedQuAD's default
    heldout = set(split["heldout_doc_ids"])
    side_by_focus: dict[str, set[bool]] = {}
    for p in passages:
        side_by_focus.setdefault(p.meta["focus"], set()).add(p.doc_id in heldout)
    assert all(len(sides) == 1 for sides in side_by_focus.values())
    assert 0 < counts["heldout_documents"] < counts["documents"]


def test_malformed_xml_names_the_file_and_line(tmp_path: Path) -> None:
    folder = tmp_path / "MedQuAD" / "1_Test_QA"
    folder.mkdir(parents=True)
    (folder / "0001.xml").write_text(
        '<Document id="1" source="T">\n<Focus>X</Focus>\n<QAPairs>\n', encoding="utf-8"
    )
    with pytest.raises(InputFormatError, match=r"0001\.xml:4: invalid XML"):
        run_ingest(RunLayout(tmp_path / "run"), IngestConfig(), tmp_path / "MedQuAD")


def test_unreadable_archive(tmp_path: Path) -> None:
    broken = tmp_path / "medquad-broken.tar.gz"
    broken.write_bytes(b"\x1f\x8b\x08 not really gzip")
    with pytest.raises(InputFormatError, match="not a readable tar archive"):
        run_ingest(RunLayout(tmp_path / "run"), IngestConfig(), broken)
