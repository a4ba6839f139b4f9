"""The saved model folder: ordinary file modes, sentence-transformers' cross-encoder marker, and a
Hugging Face style model card with every training option, the data statistics and the evaluation."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from synthrank.stages.evaluate.report import set_card_evaluation
from synthrank.stages.train.model_card import finish_model_folder
from synthrank.stages.train.trainer import TrainConfig
from test_training_support import tiny_model

DEFAULTS = dataclasses.asdict(TrainConfig())
RESULT = {
    "steps": 30,
    "epochs": 2.0,
    "best_dev_ndcg@10": 0.61,
    "best_step": 20,
    "dev_history": [{"step": 10, "dev_ndcg@10": 0.55}, {"step": 20, "dev_ndcg@10": 0.61}],
    "mean_loss": 1.2,
    "device": "cpu",
    "data_groups_in": 64,
    "data_groups_used": 60,
    "data_dropped_no_positive": 4,
}


@pytest.fixture
def usual_umask() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("card") / "model")


def test_folder_files_get_ordinary_modes(model_folder: Path, usual_umask: None) -> None:
    weights = model_folder / "model.safetensors"
    weights.chmod(0o600)  # as transformers leaves it: written to a private temporary file, renamed
    finish_model_folder(model_folder, base_model="org/start", config=DEFAULTS, result={})
    modes = {p.name: p.stat().st_mode & 0o777 for p in model_folder.iterdir()}
    assert modes["model.safetensors"] == 0o644
    assert set(modes.values()) == {0o644}, modes
    assert model_folder.stat().st_mode & 0o777 == 0o755


def test_cross_encoder_marker_is_what_sentence_transformers_writes(
    model_folder: Path, tmp_path: Path
) -> None:
    from sentence_transformers import CrossEncoder

    finish_model_folder(model_folder, base_model="org/start", config=DEFAULTS, result={})
    ours = json.loads((model_folder / "config_sentence_transformers.json").read_text())
    model = CrossEncoder(str(model_folder))
    assert model.predict([("asthma", "asthma symptoms")]).shape == (1,)
    model.save_pretrained(str(tmp_path / "saved"), create_model_card=False)
    theirs = json.loads((tmp_path / "saved" / "config_sentence_transformers.json").read_text())
    assert ours == theirs and ours["model_type"] == "CrossEncoder"


def test_card_lists_every_option_data_statistics_and_evaluation(model_folder: Path) -> None:
    config = dataclasses.asdict(TrainConfig(head_learning_rate=1e-3, random_negative_share=0.5, epochs=2))
    card_path = finish_model_folder(model_folder, base_model="org/start", config=config, result=RESULT)
    card = card_path.read_text(encoding="utf-8")

    front, body = card.split("---\n", 2)[1:]
    assert "library_name: sentence-transformers" in front and "base_model: org/start" in front
    for heading in ("## Model Details", "## Usage", "### Training Dataset", "### Training Hyperparameters"):
        assert heading in body
    for field in dataclasses.fields(TrainConfig):
        assert f"| {field.name} | " in body, field.name
    assert "| head_learning_rate | 0.001 |" in body and "| random_negative_share | 0.5 |" in body
    assert "| groups_used | 60 | groups trained on |" in body
    assert "| 20 | 0.61 |" in body  # the dev history as its own table
    assert "Not evaluated yet" in body

    assert set_card_evaluation(model_folder, "| system | nDCG@10 |\n| --- | --- |\n| ours | 0.65 |")
    card = card_path.read_text(encoding="utf-8")
    assert "| ours | 0.65 |" in card and "Not evaluated yet" not in card
    assert "## Framework Versions" in card and "- synthrank: " in card

    record = json.loads((model_folder / "synthrank_training.json").read_text())
    assert record["config"]["head_learning_rate"] == 1e-3


def test_a_local_start_model_is_named_but_not_linked(model_folder: Path, tmp_path: Path) -> None:
    start = str(tmp_path)
    card = finish_model_folder(model_folder, base_model=start, config=DEFAULTS, result=RESULT).read_text()
    assert f"base_model: {start}" in card and "huggingface.co" not in card
