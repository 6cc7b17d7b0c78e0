"""Family 1, corrupt or truncated files and unwritable outputs: a clear error naming the file
(exit status 2, no traceback); a damaged last checkpoint on --resume offers the previous one."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
from hostile_fixtures import make_run, truncate

from loralab.errors import LoralabError
from loralab.safe_files import CorruptFileError, ensure_output_dir, load_npy, load_torch, read_json


def test_resume_from_a_damaged_last_checkpoint_names_it_and_offers_the_previous(cli, tmp_path):
    run = make_run(tmp_path / "run", epochs=2)
    (run / "final_model").mkdir(exist_ok=True)
    damaged = truncate(run / "checkpoint-epoch-2" / "adapter_model.safetensors", 100)
    code, err = cli("train", "paper_r64", "--output-dir", run, "--resume")
    assert code == 2
    assert str(damaged) in err and str(run / "checkpoint-epoch-1") in err and "mv " in err


def test_resume_with_a_truncated_optimizer_names_it(cli, tmp_path):
    run = make_run(tmp_path / "run", epochs=1)
    damaged = truncate(run / "checkpoint-epoch-1" / "optimizer.pt", 50)
    code, err = cli("train", "paper_r64", "--output-dir", run, "--resume")
    assert code == 2 and str(damaged) in err and "No earlier complete checkpoint" in err


def test_evaluate_refuses_damaged_adapter_files_before_loading_anything(cli, tmp_path):
    run = make_run(tmp_path / "run")
    (run / "checkpoint-epoch-1" / "adapter_config.json").write_text('{"r": 8,')
    code, err = cli("evaluate", run, "--checkpoints", "last")
    assert code == 2 and "adapter_config.json" in err
    run = make_run(tmp_path / "run2")
    truncate(run / "checkpoint-epoch-1" / "adapter_model.safetensors", 60)
    code, err = cli("evaluate", run, "--checkpoints", "1")
    assert code == 2 and "adapter_model.safetensors" in err


def test_evaluate_with_binary_training_config_names_it(cli, tmp_path):
    run = make_run(tmp_path / "run")
    (run / "training_config.json").write_bytes(b"\x80\x81\xfe\xff{")
    code, err = cli("evaluate", run)
    assert code == 2 and "training_config.json" in err


def test_loading_a_damaged_adapter_for_inference_names_the_file(tmp_path):
    from loralab.speech.model.load import load_for_inference

    run = make_run(tmp_path / "run")
    damaged = truncate(run / "checkpoint-epoch-1" / "adapter_model.safetensors", 60)
    with pytest.raises(CorruptFileError, match="adapter_model.safetensors") as info:
        load_for_inference(run / "checkpoint-epoch-1", device="cpu")
    assert info.value.path == damaged


@pytest.mark.parametrize("damage", ["events", "config"])
def test_status_and_compare_read_binary_bytes_without_a_traceback(cli, tmp_path, damage):
    run = make_run(tmp_path / "run")
    if damage == "events":
        (run / "events.jsonl").write_bytes(b"\x80\x81\xfe\xff\n" + (run / "events.jsonl").read_bytes())
    else:
        (run / "training_config.json").write_bytes(b"\x80\x81\xfe\xff{")
    code, err = cli("status", run, "--no-write")
    assert code == 0, err
    code, err = cli("compare", run)
    assert code == 0, err


def test_status_of_a_file_says_it_is_a_file(cli, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    code, err = cli("status", afile)
    assert code == 2 and "is a file, not a run directory" in err and "does not exist" not in err


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_status_with_a_torn_last_line_and_a_final_model_is_finished(cli, tmp_path, capsys):
    import time

    now = time.time()
    start = {"event": "start", "time": now - 60, "step": 0, "pid": _dead_pid(), "host": socket.gethostname()}
    run = make_run(
        tmp_path / "run", events=[start, {"event": "step", "time": now - 30, "step": 1, "loss": 1.0}]
    )
    with (run / "events.jsonl").open("a") as f:
        f.write('{"event": "end", "time": 1')  # torn: the disk filled up mid-write
    (run / "final_model").mkdir()
    code, err = cli("status", run, "--no-write", "--format", "json")
    assert code == 0, err
    assert json.loads(cli.stdout)["state"] == "finished"


@pytest.mark.parametrize(
    "command",
    [
        ["speech", "prepare", "--source", "S", "--out", "{file}"],
        ["speech", "prepare", "--source", "S", "--out", "/proc/loralab-test/out"],
        ["train", "paper_r64", "--output-dir", "{file}"],
        ["compare", "paper_r64", "--out", "/proc/loralab-test.md"],
        ["compare", "paper_r64", "--out", "{file}/report.md"],
    ],
)
def test_unwritable_output_paths_are_named_before_any_work(cli, tmp_path, command):
    afile = tmp_path / "afile"
    afile.write_text("x")
    args = [a.replace("{file}", str(afile)) for a in command]
    code, err = cli(*args)
    out = args[args.index("--out" if "--out" in args else "--output-dir") + 1]
    assert code == 2 and out in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(LoralabError, match="cannot write there"):
            ensure_output_dir(folder / "sub", "--out")
    finally:
        folder.chmod(0o755)


def test_safe_loaders_name_the_file(tmp_path):
    import numpy as np
    import torch

    npy = tmp_path / "coords.npy"
    np.save(npy, np.zeros((50, 3)))
    truncate(npy, 100)
    with pytest.raises(CorruptFileError, match="coords.npy"):
        load_npy(npy)
    pt = tmp_path / "optimizer.pt"
    torch.save({"a": torch.zeros(10)}, pt)
    truncate(pt, 30)
    with pytest.raises(CorruptFileError, match="optimizer.pt"):
        load_torch(pt)
    js = tmp_path / "x.json"
    js.write_bytes(b"\xff\x00")
    with pytest.raises(CorruptFileError, match="x.json"):
        read_json(js)
    js.write_text(json.dumps({"ok": 1}))
    assert read_json(js) == {"ok": 1}
