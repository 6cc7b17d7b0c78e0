"""Round 3 on protein predict's memory guard: it sizes the batch (length-sorted, padded to its
longest chain), not one chain, and lowers the batch size until every batch fits; a chain whose
3D reconstruction would not fit in the host's memory is refused; a long chain's reconstruction
is announced before the minutes it takes. No model: the forward pass is a stand-in."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hostile_fixtures import make_run

from loralab.config import load_config
from loralab.errors import DataError
from loralab.protein import predict
from loralab.protein.memory import RECONSTRUCT_PAIR_BYTES, check_fits_in_memory, pair_bytes

CFG = load_config("small")
CPU = SimpleNamespace(device=torch.device("cpu"), weight_dtype=torch.float32)


def _summaries(*lengths):
    return [{"given_name": f"s{i}", "predicted_length": n} for i, n in enumerate(lengths)]


def test_four_long_chains_do_not_pass_a_check_sized_for_one():
    per_pair = pair_bytes(CFG, CPU)
    available = int(2.5 * 1800**2 * per_pair / 0.8)  # one or two 1,800-residue chains fit, not three
    assert check_fits_in_memory(_summaries(1800, 1800, 1800, 1800), CFG, CPU, available, batch_size=8) == 2
    # length-sorted batches of 3: [100, 200, 1800] and [1800] need 3 x 1800^2: too much; of 2: fits
    assert check_fits_in_memory(_summaries(1800, 100, 1800, 200), CFG, CPU, available, batch_size=3) == 2
    assert check_fits_in_memory(_summaries(100, 200, 300), CFG, CPU, available, batch_size=8) == 8
    with pytest.raises(DataError, match="s0': 1800 residues need about"):
        check_fits_in_memory(
            _summaries(1800), CFG, CPU, available=int(1800**2 * per_pair / 0.8) - 1, batch_size=4
        )


def test_a_reconstruction_beyond_the_host_memory_is_refused_before_the_gpu_runs():
    gpu = SimpleNamespace(device=torch.device("cuda"), weight_dtype=torch.bfloat16)
    host = int(2000**2 * RECONSTRUCT_PAIR_BYTES / 0.8)
    assert check_fits_in_memory(_summaries(2000), CFG, gpu, available=10**13, host_available=host) == 1
    with pytest.raises(
        DataError, match=r"3000 residues .* for its 3D reconstruction .* the host has .* up to about 2,000"
    ):
        check_fits_in_memory(_summaries(3000), CFG, gpu, available=10**13, host_available=host)


def test_predict_lowers_the_batch_size_and_announces_a_long_reconstruction(tmp_path, monkeypatch, capsys):
    run = make_run(tmp_path / "prun", load_config("small"))
    used = {}

    def forward(model, examples, batch_size, runtime, progress=False):
        used["batch_size"] = batch_size
        out = []
        for ex in examples:
            idx = np.arange(ex.length, dtype=np.float32)
            out.append(3.8 * np.abs(idx[:, None] - idx[None, :]) ** 0.6)
        return out

    per_pair = pair_bytes(CFG, CPU)
    monkeypatch.setattr(predict, "find_checkpoint", lambda ref: (run, CFG))
    monkeypatch.setattr(predict, "load_trained_model", lambda c, r: (None, CFG, run))
    monkeypatch.setattr(predict, "predict_distance_matrices", forward)
    monkeypatch.setattr(
        "loralab.protein.memory.available_memory", lambda device: int(1.5 * 60**2 * per_pair / 0.8)
    )
    monkeypatch.setattr(predict, "LONG_CHAIN", 50)
    sequences = [("a", "MKTAYIAKQR" * 6), ("b", "MKTAYIAKQR" * 6), ("c", "MKTAYIAKQR")]
    predict.predict_sequences(run, sequences, tmp_path / "out", refine=False, batch_size=8, device="cpu")
    err = capsys.readouterr().err
    assert used["batch_size"] == 1 and "predicting 1 sequence(s) at a time, not 8" in err
    assert "a: 60 residues: reconstructing the 3D trace" in err and "c: 10 residues" not in err
