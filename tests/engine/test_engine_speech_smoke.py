"""`loralab train` end to end on the tiny Phi-4-multimodal and the synthetic corpus (CPU)."""

from __future__ import annotations

import json
import math

from loralab.cli.main import main
from loralab.engine.checkpoint import checkpoint_dir
from loralab.engine.events import read_events, to_float


def test_loralab_train_paper_r64_on_the_tiny_model(tiny_model_dir, synth_manifest_dir, tmp_path, capsys):
    run = tmp_path / "run"
    argv = [
        "train",
        "paper_r64",
        f"model.name_or_path={tiny_model_dir}",
        f"speech.manifest_dir={synth_manifest_dir}",
        "speech.prompt_style=short",
        "speech.limit=2",  # 2 utterances x 2 tasks = 4 examples: 2 steps of batch 2
        "lora.rank=4",
        "lora.alpha=8",
        "training.log_every=1",
        "--epochs",
        "1",
        "--batch-size",
        "2",
        "--gradient-accumulation",
        "1",
        "--output-dir",
        str(run),
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"loralab status {run}" in out and f"tensorboard --logdir {run / 'logs'}" in out
    events = read_events(run)
    assert [e["event"] for e in events] == ["start", "step", "step", "checkpoint", "end"]
    assert all(
        math.isfinite(to_float(e["loss"])) and e["grad_norm"] > 0 for e in events if e["event"] == "step"
    )
    assert any(p.suffix == ".safetensors" for p in checkpoint_dir(run, 1).rglob("*"))
    assert (run / "final_model").is_dir() and any((run / "final_model").iterdir())
    info = json.loads((run / "training_config.json").read_text())
    assert info["params"]["lora"]["trainable"] > 0
    assert info["params"]["text_decoder"]["trainable"] == 0
