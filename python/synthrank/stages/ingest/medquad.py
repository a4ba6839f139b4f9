"""Read the MedQuAD XML release (a folder or its .tar.gz) as one document per answered question.

A document is one QA pair's answer, with doc_id f"{source}_{file name}_Sec{pid}" (the answer ids
of MedQuAD's LiveQA qrels, e.g. "GHR_0000804_Sec2"; question ids repeat across sources): answers are
self-contained texts, and the in-domain evaluation needs "the passages of this question's answer" as
its relevant set. Pairs with an empty answer (the three MedlinePlus sets had their answers removed
upstream) are skipped silently, as the release intends. `meta` keeps what evaluation and stratified
sampling need: the XML document id, source, url, focus, question type and the question itself.
Hold out by `focus` (IngestConfig.heldout_group) so templated questions about one topic never leak.
"""

from __future__ import annotations

import tarfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

from synthrank.errors import InputFormatError
from synthrank.stages.ingest.readers import BadRecord, Document, Record


def is_medquad(path: Path) -> bool:
    """A MedQuAD release: a .tar.gz/.tgz of XML files, or a folder with *_QA*/ subfolders of XML."""
    if path.is_file():
        return path.name.endswith((".tar.gz", ".tgz")) and "medquad" in path.name.lower()
    return path.is_dir() and any(p.is_dir() and "_QA" in p.name for p in path.iterdir())


_ROOTS = ("document", "doc", "diseasefile")  # three schema variants occur in the release


def _child(element: ET.Element, *names: str) -> ET.Element | None:
    return next((c for c in element if c.tag.lower() in names), None)


def _documents(xml_bytes: bytes, where: str) -> Iterator[Record]:
    # The file name, not the id attribute: CancerGov splits one id over 0000013_2_1.xml, _2.xml, ...
    file_id = where.rsplit("/", 1)[-1].removesuffix(".xml")
    try:
        root = ET.fromstring(xml_bytes)
    except ET.ParseError as exc:
        yield BadRecord("malformed", InputFormatError(where, exc.position[0], f"invalid XML: {exc}"))
        return
    if root.tag.lower() not in _ROOTS:
        yield BadRecord("malformed", InputFormatError(where, 1, f"expected <Document>, got <{root.tag}>"))
        return
    focus_element = _child(root, "focus", "doctitle-focus")
    focus = " ".join((focus_element.text or "").split()) if focus_element is not None else ""
    source = root.get("source") or root.get("corpus") or ""
    document_id = root.get("id") or root.get("docid") or root.get("fid") or ""
    base = {"medquad_doc_id": document_id, "source": source, "url": root.get("url", ""), "focus": focus}
    pairs = _child(root, "qapairs")
    for pair in pairs if pairs is not None else ():
        question = _child(pair, "question")
        answer_element = _child(pair, "answer")
        answer = (answer_element.text or "").strip() if answer_element is not None else ""
        if question is None or not answer:
            continue
        meta = {
            **base,
            "qid": question.get("qid", ""),
            "qtype": question.get("qtype", ""),
            "question": " ".join((question.text or "").split()),
        }
        doc_id = f"{source}_{file_id}_Sec{pair.get('pid', '')}"
        yield Document(doc_id=doc_id, text=answer, path=where, line=None, title=focus, meta=meta)


def read_medquad(path: Path) -> Iterator[Record]:
    """Stream MedQuAD documents from a folder (sorted file order) or a tar.gz (archive order)."""
    if path.is_dir():
        for file in sorted(path.rglob("*.xml")):
            yield from _documents(file.read_bytes(), str(file))
        return
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                if not (member.isfile() and member.name.endswith(".xml")):
                    continue
                fh = archive.extractfile(member)
                if fh is not None:
                    yield from _documents(fh.read(), f"{path}!{member.name}")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise InputFormatError(path, None, f"not a readable tar archive: {exc}") from exc
