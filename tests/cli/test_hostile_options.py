"""Family 1, invalid options: one argparse type per kind of value, used by every command,
so argparse names the flag and exits with status 2 before any work."""

from __future__ import annotations

import argparse

import pytest

from loralab.cli.common import device_spec, fraction, non_negative_int, positive_int


@pytest.mark.parametrize(
    "args, flag",
    [
        (["evaluate", "RUN", "--device", "banana"], "--device"),
        (["evaluate", "RUN", "--device", "cuda:7"], "--device"),
        (["evaluate", "RUN", "--max-new-tokens=-5"], "--max-new-tokens"),
        (["evaluate", "RUN", "--limit=-1"], "--limit"),
        (["evaluate", "RUN", "--limit", "0"], "--limit"),
        (["evaluate", "RUN", "--batch-size", "0"], "--batch-size"),
        (["speech", "prepare", "--source", "S", "--out", "O", "--workers", "-3"], "--workers"),
        (["speech", "synth", "--out", "O", "--n", "0"], "--n"),
        (["train", "paper_r64", "--max-steps=-5"], "--max-steps"),
        (["train", "paper_r64", "--batch-size", "0"], "--batch-size"),
        (["train", "paper_r64", "--epochs", "ten"], "--epochs"),
        (
            ["assess", "--model", "M", "--audio", "a.wav", "--text", "t", "--max-new-tokens=-5"],
            "--max-new-tokens",
        ),
        (["assess", "--model", "M", "--audio", "a.wav", "--text", "t", "--device", "banana"], "--device"),
        (["assess", "--model", "M", "--audio", "a.wav", "--text", "t", "--batch-size", "0"], "--batch-size"),
    ],
)
def test_bad_option_values_name_the_flag(cli, args, flag):
    code, err = cli(*args)
    assert code == 2
    assert f"argument {flag}:" in err


def test_cuda_device_without_cuda_says_so(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(argparse.ArgumentTypeError, match="no usable CUDA GPU"):
        device_spec("cuda:7")
    assert device_spec("CPU") == "cpu"


def test_cuda_index_beyond_the_gpus_present(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(argparse.ArgumentTypeError, match="cuda:0 to cuda:1"):
        device_spec("cuda:7")
    assert device_spec("cuda:1") == "cuda:1"


def test_number_types():
    assert positive_int("3") == 3 and non_negative_int("0") == 0
    for bad in ("0", "-1", "1.5", "x"):
        with pytest.raises(argparse.ArgumentTypeError):
            positive_int(bad)
    with pytest.raises(argparse.ArgumentTypeError, match="write 0.3"):
        fraction("30")
    assert fraction("0.3") == 0.3 and fraction("1") == 1.0


def test_max_steps_below_one_in_a_config_is_refused(tmp_path):
    from loralab.config import load_config
    from loralab.engine.trainer import train
    from loralab.errors import LoralabError

    cfg = load_config("paper_r64", ["training.max_steps=-5", f"output_dir={tmp_path / 'run'}"])
    with pytest.raises(LoralabError, match="max_steps"):
        train(cfg)
    assert not (tmp_path / "run").exists()  # nothing written


def test_gpus_on_a_machine_without_cuda_is_an_error(cli, tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    code, err = cli("train", "paper_r64", "--gpus", "0", "--output-dir", tmp_path / "run")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert code == 2 and "--gpus" in err and "no such CUDA GPU" in err
    assert not (tmp_path / "run").exists()


def test_debug_flag_and_unexpected_errors(cli, monkeypatch):
    from loralab.cli import status

    def boom(args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(status, "run", boom)
    monkeypatch.delenv("LORALAB_DEBUG", raising=False)
    code, err = cli("status", "RUN")
    assert code == 1
    assert "unexpected error: ZeroDivisionError: a bug" in err and "--debug" in err
    with pytest.raises(ZeroDivisionError):
        cli("status", "RUN", "--debug")
    monkeypatch.setenv("LORALAB_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        cli("status", "RUN")


def test_a_file_system_refusal_names_the_path(cli, monkeypatch):
    from loralab.cli import status

    def refuse(args):
        raise PermissionError(13, "Permission denied", "/data/run/status.md")

    monkeypatch.setattr(status, "run", refuse)
    code, err = cli("status", "RUN")
    assert code == 2 and "/data/run/status.md: Permission denied" in err
