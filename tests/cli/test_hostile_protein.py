"""Protein commands on hostile input: an identity threshold given as a percentage, bad option
values, a speech run as --model, a sequence too long for memory with --no-crop, a second
predict into the same --out. Fake runs only: nothing is trained or loaded."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from hostile_fixtures import make_run

from loralab.config import load_config
from loralab.errors import DataError


@pytest.fixture
def protein_run(tmp_path):
    run = make_run(tmp_path / "prun", load_config("small"))
    (run / "final_model").mkdir()
    (run / "final_model" / "protein_head.safetensors").write_bytes(b"")  # never read: refused before
    return run


@pytest.mark.parametrize(
    "args, flag",
    [
        (
            ["protein", "prepare", "--structures", "S", "--out", "O", "--identity-threshold", "30"],
            "--identity-threshold",
        ),
        (["protein", "prepare", "--structures", "S", "--out", "O", "--min-length", "0"], "--min-length"),
        (
            ["protein", "predict", "--model", "M", "--sequence", "MKT", "--out", "O", "--batch-size", "0"],
            "--batch-size",
        ),
        (
            ["protein", "predict", "--model", "M", "--sequence", "MKT", "--out", "O", "--device", "banana"],
            "--device",
        ),
        (["evaluate", "RUN", "--limit=-1"], "--limit"),
    ],
)
def test_bad_protein_option_values_name_the_flag(cli, args, flag):
    code, err = cli(*args)
    assert code == 2 and f"argument {flag}:" in err


def test_identity_threshold_as_percent_suggests_the_fraction(cli):
    code, err = cli("protein", "prepare", "--structures", "S", "--out", "O", "--identity-threshold", "30")
    assert code == 2 and "write 0.3" in err


def test_predict_with_a_speech_run_says_it_is_a_speech_run(cli, tmp_path):
    run = make_run(tmp_path / "srun")
    (run / "final_model").mkdir()
    code, err = cli("protein", "predict", "--model", run, "--sequence", "MKTAYIAKQR", "--out", tmp_path / "o")
    assert code == 2 and "a 'speech' run, not a protein run" in err and "no final_model" not in err


def test_no_crop_on_a_huge_sequence_says_how_long_fits(cli, protein_run, tmp_path):
    code, err = cli(
        "protein", "predict", "--model", protein_run, "--sequence", "A" * 100_000,
        "--out", tmp_path / "o", "--no-crop", "--device", "cpu",
    )  # fmt: skip
    assert code == 2
    assert "100000 residues need about" in err and "residues fit" in err and "--no-crop" in err


def test_memory_check_arithmetic():
    from loralab.protein.predict import check_fits_in_memory, pair_bytes

    cfg = load_config("small")
    runtime = SimpleNamespace(device=torch.device("cpu"), weight_dtype=torch.float32)
    per_pair = pair_bytes(cfg, runtime)
    summaries = [{"given_name": "big", "predicted_length": 1000}]
    check_fits_in_memory(summaries, cfg, runtime, available=int(1000 * 1000 * per_pair / 0.8) + 1)
    with pytest.raises(DataError, match=r"up to about 707 residues fit"):
        check_fits_in_memory(summaries, cfg, runtime, available=int(500 * 500 * per_pair / 0.8 * 2))


def test_a_second_predict_into_the_same_out_keeps_the_earlier_entries(tmp_path):
    from loralab.protein.predict import _earlier_predictions

    path = tmp_path / "predictions.json"
    earlier = {"model": "run1/final_model", "predictions": [{"name": "a"}, {"name": "b"}]}
    path.write_text(json.dumps(earlier))
    kept = _earlier_predictions(path, replaced={"b"})
    assert kept == [{"name": "a", "model": "run1/final_model"}]
    path.write_bytes(b"\xff")
    assert _earlier_predictions(path, replaced=set()) == []


def test_unwritable_predict_out_is_named(cli, protein_run, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    code, err = cli("protein", "predict", "--model", protein_run, "--sequence", "MKTAYIAKQR", "--out", afile)
    assert code == 2 and str(afile) in err and "not a folder" in err


def test_predict_with_a_truncated_head_names_the_file(cli, protein_run, tmp_path):
    from safetensors.torch import save_file

    head = protein_run / "final_model" / "protein_head.safetensors"
    save_file({"w": torch.zeros(64, 64)}, str(head))
    head.write_bytes(head.read_bytes()[:100])
    code, err = cli(
        "protein", "predict", "--model", protein_run, "--sequence", "MKTAYIAKQR", "--out", tmp_path / "o"
    )
    assert code == 2 and str(head) in err
