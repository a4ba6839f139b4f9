"""The query filter: every drop reason, on real files in a run folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llm_support import make_run, read_lines
from synthrank.errors import ConfigError, InputFormatError
from synthrank.records import Passage, Query, write_jsonl_atomic
from synthrank.stages.filter import FilterConfig, copied_share, dominant_script, run_filter

PASSAGE = Passage(
    "p0",
    "d0",
    "Diabetes is a disease in which blood glucose levels are too high. Insulin helps glucose enter cells. "
    "Treatment includes diet, exercise and medicines such as metformin.",
)
LONG_QUESTION = (
    "what foods and drinks should people living with type two diabetes avoid eating and drinking at home "
)


def query(i: int, text: str) -> Query:
    return Query(f"q{i:02d}", "d0", "p0", text, "question", "generate-v2", "fake")  # ids sort like the input


CASES = [
    ("", "empty_or_unparsable"),
    ("flu shot", "too_short"),
    (" ".join(["word"] * 70), "too_long"),
    ("see https://example.org for insulin dosing", "wrong_format"),
    ("Here are three questions about diabetes:", "wrong_format"),
    ("I have been PWNED", "instruction_echo"),
    ("As an AI I cannot write questions", "instruction_echo"),
    ("что такое сахарный диабет и инсулин", "wrong_script"),
    ("how do volcanoes erupt under the ocean", "off_topic"),
    ("a disease in which blood glucose levels are too high", "copied_from_passage"),
    ("How is diabetes treated with diet and exercise?", None),
    ("how is diabetes treated with DIET and exercise", "exact_duplicate"),
    (LONG_QUESTION + "daily", None),
    (LONG_QUESTION + "today", "near_duplicate"),
    ("metformin side effects", None),
    ("diabetes blood glucose levels", None),  # shares words with the passage, too short to call copied
]


def test_every_drop_reason_is_counted_and_the_rest_kept_in_order(tmp_path: Path) -> None:
    layout = make_run(tmp_path / "run", [PASSAGE])
    write_jsonl_atomic(layout.raw_queries, [query(i, text) for i, (text, _) in enumerate(CASES)])
    counts = run_filter(layout, FilterConfig())
    kept = [q["text"] for q in read_lines(layout.queries)]
    assert kept == [text for text, reason in CASES if reason is None]
    stats = json.loads((layout.root / "filter_stats.json").read_text())
    expected: dict[str, int] = {}
    for _, reason in CASES:
        if reason:
            expected[reason] = expected.get(reason, 0) + 1
    assert {k: v for k, v in stats["dropped"].items() if v} == expected
    assert stats["raw"] == len(CASES) and counts["kept"] == len(kept)


def test_thresholds_are_configurable(tmp_path: Path) -> None:
    layout = make_run(tmp_path / "run", [PASSAGE])
    write_jsonl_atomic(
        layout.raw_queries, [query(0, "flu shot"), query(1, "insulin helps glucose enter cells today")]
    )
    run_filter(layout, FilterConfig(min_words=2, copy_overlap=1.0, copy_ngram=6, require_shared_word=False))
    assert [q["text"] for q in read_lines(layout.queries)] == [
        "flu shot",
        "insulin helps glucose enter cells today",
    ]


def test_copied_share_and_script() -> None:
    grams: set[tuple[str, ...]] = {("a", "b", "c"), ("b", "c", "d")}
    assert copied_share(["a", "b", "c", "d", "x"], grams, 3) == 0.8
    assert copied_share(["a", "b"], grams, 3) == 0.0
    assert dominant_script("Hello мир world") == "LATIN"
    assert dominant_script("123 !") is None


def test_bad_config_and_missing_input_are_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="min_words"):
        FilterConfig(min_words=10, max_words=5)
    layout = make_run(tmp_path / "run", [PASSAGE])
    with pytest.raises(InputFormatError, match=r"queries\.raw\.jsonl"):
        run_filter(layout, FilterConfig())
