"""DistributedDataParallel: two gloo processes on CPU train in lockstep and end with identical weights."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from test_training_support import tiny_model, tiny_run

REPO = Path(__file__).resolve().parents[1]

WORKER = """
import os, sys, torch
from pathlib import Path
from synthrank.records import RunLayout
from synthrank.stages.train.trainer import TrainConfig, Trainer

cfg = TrainConfig(model={model!r}, batch_size=2, group_size=4, epochs=1, max_steps=6, learning_rate=1e-3,
                  max_length=64, max_query_tokens=16, cpu_threads=1, checkpoint_every=3, eval_every=3)
trainer = Trainer(RunLayout({run!r}), cfg)
result = trainer.train()
assert result["world_size"] == 2, result
torch.save(trainer.model.state_dict(), Path({out!r}) / f"rank{{os.environ['RANK']}}.pt")
"""


def test_two_gloo_ranks_end_with_identical_weights(tmp_path: Path) -> None:
    model = tiny_model(tmp_path / "tiny")
    layout = tiny_run(tmp_path / "run")
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(model=str(model), run=str(layout.root), out=str(tmp_path)))
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(REPO / "python"), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(script),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    start = load_file(str(model / "model.safetensors"))
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name
    assert not torch.equal(rank0["classifier.weight"], start["classifier.weight"]), "training changed nothing"
    assert (layout.model / "model.safetensors").is_file()
    assert (layout.root / "checkpoints" / "model" / "step-00000003").is_dir()
