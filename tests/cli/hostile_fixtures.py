"""Tiny hand-made inputs for the hostile-input tests: a two-utterance SpeechOcean762 copy in the
original layout (a tone per utterance, no espeak-ng), and fake run directories (no training)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from loralab.config.schema import config_to_dict

RATE = 16000


def scores_entry(**over) -> dict:
    """One scores.json entry: the sentence "A" (phone AH0), every score in range."""
    entry = {
        "text": "A",
        "accuracy": 8,
        "completeness": 10.0,
        "fluency": 8,
        "prosodic": 8,
        "total": 8,
        "words": [
            {
                "text": "A",
                "accuracy": 10,
                "stress": 10,
                "total": 10,
                "phones": ["AH0"],
                "phones-accuracy": [2.0],
                "mispronunciations": [],
            }
        ],
    }
    entry.update(over)
    return entry


def tone(seconds: float = 0.5, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def make_corpus(root: Path, ids: dict[str, str] | None = None) -> Path:
    """The original release layout with one tone WAV and one in-range entry per utterance id."""
    ids = ids or {"000010001": "train", "000020001": "test"}
    scores = {}
    for split in ("train", "test"):
        (root / split).mkdir(parents=True, exist_ok=True)
        rows = [(utt, f"WAVE/SPEAKER{utt[1:5]}/{utt}.WAV") for utt, s in ids.items() if s == split]
        (root / split / "wav.scp").write_text("".join(f"{u}\t{p}\n" for u, p in rows))
        (root / split / "utt2spk").write_text("".join(f"{u}\t{u[1:5]}\n" for u, _ in rows))
        for utt, relative in rows:
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            sf.write(root / relative, tone(), RATE, subtype="PCM_16", format="WAV")
            scores[utt] = scores_entry()
    (root / "resource").mkdir(exist_ok=True)
    (root / "resource/scores.json").write_text(json.dumps(scores))
    return root


def wav_path(root: Path, utt: str) -> Path:
    return next(root.glob(f"WAVE/*/{utt}.WAV"))


def edit_scores(root: Path, utt: str, **over) -> None:
    path = root / "resource/scores.json"
    scores = json.loads(path.read_text())
    scores[utt].update(over)
    path.write_text(json.dumps(scores))


def speech_config(manifest_dir: Path | str = "data/so762", **over):
    from loralab.config import load_config

    return load_config(
        "paper_r64", [f"speech.manifest_dir={manifest_dir}", *[f"{k}={v}" for k, v in over.items()]]
    )


def make_run(run: Path, cfg=None, *, events: list[dict] | None = None, epochs: int = 1) -> Path:
    """A run directory as training leaves it: training_config.json, events.jsonl, checkpoints with
    small adapter/optimizer files, final_model/. No model behind it."""
    import torch
    from safetensors.torch import save_file

    cfg = cfg or speech_config()
    run.mkdir(parents=True, exist_ok=True)
    (run / "training_config.json").write_text(json.dumps({"config": config_to_dict(cfg)}, default=str))
    now = time.time()
    records = events or [
        {"event": "start", "time": now - 60, "step": 0, "pid": 1, "host": "elsewhere", "name": cfg.name},
        {"event": "step", "time": now - 30, "step": 1, "epoch": 1, "loss": 1.0, "lr": 1e-4},
        {"event": "end", "time": now - 10, "step": 1, "status": "finished"},
    ]
    (run / "events.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    for epoch in range(1, epochs + 1):
        ckpt = run / f"checkpoint-epoch-{epoch}"
        ckpt.mkdir()
        save_file({"lora_A.weight": torch.zeros(4, 8)}, str(ckpt / "adapter_model.safetensors"))
        (ckpt / "adapter_config.json").write_text(json.dumps({"r": 8, "lora_alpha": 16, "peft_type": "LORA"}))
        torch.save({"state": {}, "param_groups": []}, ckpt / "optimizer.pt")
        torch.save({"last_epoch": epoch}, ckpt / "scheduler.pt")
        (ckpt / "trainer_state.json").write_text(json.dumps({"epoch": epoch, "global_step": epoch}))
    return run


def truncate(path: Path, keep: int) -> Path:
    path.write_bytes(path.read_bytes()[:keep])
    return path
