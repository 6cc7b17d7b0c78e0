"""The GOP scorer (speech.prompt_reference=phones_gop): its numbers against independent
computations, its cross-fitting, its file, and its path through training and generation."""

from __future__ import annotations

import itertools
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from loralab.config.schema import config_to_dict
from loralab.engine.model_card import write_card
from loralab.errors import LoralabError
from loralab.speech.model.gop import (
    GOP_FILE,
    PAUSE_SECONDS,
    GopScorer,
    load_gop_scorer,
    timing_features,
)
from loralab.speech.model.gop_fit import WithEstimate, fit_gop_scorer, speaker_folds


def _brute_force_ctc_nll(log_probs: torch.Tensor, target: list[int]) -> float:
    """-log of the summed probability of every frame path that collapses to ``target``."""
    frames, classes = log_probs.shape
    total = 0.0
    for path in itertools.product(range(classes), repeat=frames):
        collapsed = [c for k, c in enumerate(path) if c != 0 and (k == 0 or c != path[k - 1])]
        if collapsed == target:
            total += math.exp(sum(float(log_probs[t, c]) for t, c in enumerate(path)))
    return -math.log(total)


def test_gop_is_the_ctc_likelihood_per_canonical_phone_by_brute_force():
    torch.manual_seed(0)
    phones = ["AA", "B", "K"]
    heads = [torch.randn(4, 5), torch.randn(4, 5)]
    biases = [torch.randn(4), torch.randn(4)]
    scorer = GopScorer(phones, heads, biases)
    frames = torch.randn(5, 5)
    mean_log_probs = torch.stack(
        [torch.log_softmax(frames @ w.T + b, -1) for w, b in zip(heads, biases)]
    ).mean(0)
    # the heads' mean log-probabilities are not normalised: the brute force sums the same scores
    nll = _brute_force_ctc_nll(mean_log_probs, [2, 1])  # "B AA"
    assert scorer.gop(frames, "B AA1") == pytest.approx(100 * math.exp(-nll / 2), rel=1e-5)
    assert scorer.phone_ids("B AA1 ZH") == [2, 1]  # stress stripped; unknown phones left out


def test_estimates_are_the_calibrated_features_rounded_and_clipped():
    scorer = GopScorer(
        ["AA"], [], [], calibration={"accuracy": [0.1, 0, 0, 0, 2.0], "total": [0, -1.0, 0.5, 0, 6]}
    )
    assert [scorer.estimates([g, 0, 0, 0])["accuracy"] for g in (0, 44, 46, 200)] == [2, 6, 7, 10]
    assert scorer.estimates([50, 3, 1, 0]) == {"accuracy": 7, "total": 4}  # 6 - 3 + 0.5 = 3.5, half to even
    assert scorer.estimates([50, 9, 0, 0])["total"] == 0


def test_timing_features_count_pauses_rate_and_pace_shift_of_the_heard_phones():
    fps = 10.0  # a pause: a gap of at least 3 frames between heard phones
    assert PAUSE_SECONDS * fps == 3
    heard = [2, 3, 4, 9, 10, 12, 14]  # gaps 1 1 5 1 2 2: one pause; halves' paces 1 and 2 frames
    log_probs = torch.zeros(16, 3)
    log_probs[:, 0] = 1.0  # blank wins ...
    log_probs[heard, 2] = 2.0  # ... but where a phone is heard
    pauses, rate, shift = timing_features(log_probs, fps)
    speech_seconds = (14 - 2 + 1 - 5) / fps  # from the first to the last heard phone, less the pause
    assert (pauses, rate, shift) == (1.0, pytest.approx(7 / speech_seconds), pytest.approx(0.1))
    assert timing_features(torch.zeros(5, 3), fps) == [0.0, 0.0, 0.0]  # nothing heard


def _synthetic_corpus(n_speakers=6, per_speaker=8, seed=0):
    """Frames that spell their pronounced phones (one clear direction per phone, 3 frames each)."""
    rng = np.random.default_rng(seed)
    phones = ["AA", "B", "D", "K", "S"]
    basis = np.eye(8, dtype=np.float32)[: len(phones)] * 4
    records, frames = [], []
    for s in range(n_speakers):
        for _ in range(per_speaker):
            canonical = list(rng.choice(phones, size=5))
            wrong = int(rng.integers(0, 3))
            pronounced = list(canonical)
            for k in rng.choice(5, size=wrong, replace=False):
                pronounced[k] = phones[(phones.index(pronounced[k]) + 1) % len(phones)]
            rows = [basis[phones.index(p)] for p in pronounced for _ in range(3)]
            frames.append(
                torch.tensor(np.stack(rows) + rng.normal(0, 0.3, (len(rows), 8)).astype(np.float32))
            )
            records.append(SimpleNamespace(
                speaker=f"s{s}", canonical_phones=" ".join(canonical), pronounced_phones=" ".join(pronounced),
                scores=SimpleNamespace(accuracy=10.0 - 3 * wrong),
            ))  # fmt: skip
    return records, frames


def test_fit_scores_each_utterance_with_a_head_that_did_not_hear_its_speaker():
    from scipy.linalg import lstsq

    from loralab.speech.model.gop_fit import _fit_ctc_head

    records, frames = _synthetic_corpus()
    scorer, features, heard = fit_gop_scorer(
        frames, records, aspects=("accuracy",), folds=3, steps=150, lr=3e-2, seed=5
    )
    assert len(heard) == len(records) and all(isinstance(h, str) for h in heard)
    gops = [row[0] for row in features]
    assert scorer.fit_report["folds"] == 3 and len(scorer.weights) == 1  # the head on everything
    fold = speaker_folds(records, 3)
    targets = [scorer.phone_ids(r.pronounced_phones) for r in records]
    for i in (0, 17, 40):
        rows = [j for j in range(len(records)) if fold[j] != fold[i]]
        assert records[i].speaker not in {records[j].speaker for j in rows}
        w, b, _, _ = _fit_ctc_head(
            [frames[j] for j in rows], [targets[j] for j in rows], 6, 150, 3e-2, 5 + 1 + fold[i]
        )
        alone = GopScorer(scorer.phones, [w], [b], frames_per_second=scorer.frames_per_second,
                          confusions=scorer.confusions, threshold=scorer.threshold)  # fmt: skip
        assert features[i] == pytest.approx(alone.features(frames[i], records[i].canonical_phones), rel=1e-5)
    accuracy = [r.scores.accuracy for r in records]
    assert np.corrcoef(gops, accuracy)[0, 1] > 0.8  # held-out GOP follows the mistakes
    fitted = lstsq(np.c_[np.asarray(features), np.ones(len(records))], accuracy)[0]
    assert scorer.calibration["accuracy"] == pytest.approx(list(fitted), rel=1e-6, abs=1e-9)
    final = [scorer.gop(f, r.canonical_phones) for f, r in zip(frames, records)]
    assert np.corrcoef(final, accuracy)[0, 1] > 0.8


def test_fit_refuses_records_without_pronounced_phones():
    records, frames = _synthetic_corpus(n_speakers=2, per_speaker=1)
    for r in records:
        r.pronounced_phones = ""
    with pytest.raises(LoralabError, match="pronounced phones"):
        fit_gop_scorer(frames, records)


def test_saved_scorer_loads_back_identical_and_other_versions_are_refused(tmp_path):
    torch.manual_seed(1)
    calibration = {"accuracy": [0.07, 0.0, 0.1, -0.3, 3.5], "total": [0.05, -1.0, 0.0, 0.2, 6.0]}
    calibration = {k: v[:4] + [0.5, -0.2, v[4]] for k, v in calibration.items()}  # six features
    scorer = GopScorer(["AA", "B"], [torch.randn(3, 4)], [torch.randn(3)], calibration, 24.5, {"folds": 1},
                       confusions={"AA": ["<DEL>", "B"]}, threshold=2.5)  # fmt: skip
    scorer.save(tmp_path)
    loaded = load_gop_scorer(tmp_path)
    frames = torch.randn(6, 4)
    assert torch.equal(loaded.log_probs(frames), scorer.log_probs(frames))
    assert (loaded.phones, loaded.calibration, loaded.frames_per_second, loaded.fit_report) == (
        ["AA", "B"], calibration, 24.5, {"folds": 1},
    )  # fmt: skip
    assert (loaded.confusions, loaded.threshold) == ({"AA": ["<DEL>", "B"]}, 2.5)
    assert loaded.evidence(frames, "AA B") == scorer.evidence(frames, "AA B")
    from safetensors.torch import load_file, save_file

    save_file(
        load_file(str(tmp_path / GOP_FILE)), str(tmp_path / GOP_FILE), metadata={"format_version": "99"}
    )
    with pytest.raises(LoralabError, match="format '99'"):
        load_gop_scorer(tmp_path)
    other_features = {
        "format_version": "2",
        "features": '["gop", "loudness"]',
        "phones": "[]",
        "frames_per_second": "25.0",
    }
    save_file(load_file(str(tmp_path / GOP_FILE)), str(tmp_path / GOP_FILE), metadata=other_features)
    with pytest.raises(LoralabError, match=r"calibrated on the features \["):
        load_gop_scorer(tmp_path)
    with pytest.raises(LoralabError, match=f"{GOP_FILE}: missing"):
        load_gop_scorer(tmp_path / "elsewhere")


def test_the_estimate_block_stands_only_where_its_aspect_is_asked_alone():
    from loralab.speech.chat_format import reference_of
    from loralab.speech.prompts import estimate_block

    record = SimpleNamespace(text="A CAT", canonical_phones="AH K AE T")
    phones = "Reference text: A CAT\nCanonical phones: AH K AE T\n"
    estimated = WithEstimate(record, {"accuracy": 7, "total": 5})
    assert reference_of(estimated, "phones_gop") == reference_of(record, "phones") == phones
    assert (
        estimate_block("phones_gop", "apa_accuracy", "A CAT", estimated.estimates) == "Accuracy estimate: 7\n"
    )
    assert estimate_block("phones_gop", "apa_total", "A CAT", estimated.estimates) == "Total estimate: 5\n"
    for task in ("apa", "apa_fluency", "mdd"):
        assert estimate_block("phones_gop", task, "A CAT", estimated.estimates) == ""
    assert estimate_block("phones", "apa_accuracy", "A CAT", None) == ""
    with pytest.raises(ValueError, match="accuracy estimate"):
        estimate_block("phones_gop", "apa_accuracy", "A CAT", None)
    with pytest.raises(ValueError, match="total estimate"):
        estimate_block("phones_gop", "apa_total", "A CAT", {"accuracy": 7})


def test_heard_gives_no_canonical_phones_and_each_prompt_its_own_evidence():
    """The listening layout: the sentence alone before the audio (no canonical phones to copy),
    each aspect's estimate in that aspect's prompt, the diagnosed phones in the MDD prompt."""
    from loralab.speech.chat_format import reference_of
    from loralab.speech.prompts import estimate_block, user_content

    record = SimpleNamespace(text="A CAT", canonical_phones="AH K AE T")
    evidence = {"accuracy": 6, "fluency": 9, "prosodic": 8, "total": 7, "heard_phones": "AH K EH T"}
    assert reference_of(WithEstimate(record, evidence), "heard") == "Reference text: A CAT\n"
    for aspect in ("accuracy", "fluency", "prosodic", "total"):
        block = estimate_block("heard", f"apa_{aspect}", "A CAT", evidence)
        assert block == f"{aspect.capitalize()} estimate: {evidence[aspect]}\n"
    assert estimate_block("heard", "mdd", "A CAT", evidence) == "Heard phones: AH K EH T\n"
    assert estimate_block("heard", "apa", "A CAT", evidence) == ""
    with pytest.raises(ValueError, match="diagnosed phones"):
        estimate_block("heard", "mdd", "A CAT", {"accuracy": 6})
    assert user_content("mdd", "short", "heard").startswith("<|reference|><|audio_1|><|MDD|>")


def test_phones_gop_puts_the_task_after_the_audio_and_other_layouts_keep_it_first():
    from loralab.speech.prompts import user_content

    assert user_content("mdd", "short", "phones_gop").startswith("<|reference|><|audio_1|><|MDD|>")
    assert user_content("apa_total", "short", "phones_gop").startswith("<|reference|><|audio_1|><|APA|>")
    assert user_content("mdd", "short", "phones").startswith("<|MDD|><|reference|><|audio_1|>")
    assert user_content("apa", "paper", "none").startswith("<|APA|><|audio_1|>")


def test_phones_gop_refuses_a_trained_encoder_and_tasks_without_accuracy_alone(
    tiny_qwen2audio_dir, synth_manifest_dir
):
    from loralab.config import ConfigError
    from speech.test_training import make_cfg

    with pytest.raises(ConfigError, match="drop audio_encoder") as problem:
        make_cfg(
            "qwen2audio_unfreeze_r64", tiny_qwen2audio_dir, synth_manifest_dir,
            "speech.prompt_reference=phones_gop", "model.unfreeze=[audio_encoder,audio_projector]",
        )  # fmt: skip
    both_problems = str(problem.value)
    assert "apa_accuracy, apa_total prompts, none of which speech.tasks has" in both_problems
    make_cfg(
        "qwen2audio_r64", tiny_qwen2audio_dir, synth_manifest_dir,
        "speech.prompt_reference=phones_gop", "speech.tasks=[apa,apa_accuracy,mdd]",
    )  # fmt: skip


def test_phones_gop_through_training_saving_and_generation(tiny_qwen2audio_dir, synth_manifest_dir, tmp_path):
    from loralab.speech.data.audio import load_audio
    from loralab.speech.inference.generate import BatchedGenerator
    from loralab.speech.model.gop_fit import recording_estimates
    from loralab.speech.model.load import load_for_inference
    from speech.test_training import build, make_cfg

    cfg = make_cfg(
        "qwen2audio_unfreeze_r64", tiny_qwen2audio_dir, synth_manifest_dir, "speech.prompt_reference=phones_gop",
        "model.unfreeze=[audio_projector]", "model.cache_audio_encoder=true", "speech.tasks=[apa,apa_accuracy,mdd]",
    )  # fmt: skip
    parts = build(cfg)
    scorer = parts.model.gop_scorer
    (record, _), (same, task) = parts.train_dataset[:2]
    assert same is record and task == "apa_accuracy" and set(record.estimates) == {"accuracy", "heard_phones"}
    assert 0 <= record.estimates["accuracy"] <= 10 and set(scorer.calibration) == {"accuracy"}

    def prompt(task: str) -> str:
        return parts.collate.tokenizer.decode(parts.collate([(record, task)])["input_ids"][0].tolist())

    estimate_line = f"Accuracy estimate: {record.estimates['accuracy']}\n"
    assert estimate_line in prompt("apa_accuracy")
    assert "Accuracy estimate" not in prompt("apa") + prompt("mdd")
    # After the audio: the APA prompts of a recording are the same up to its end (the fast route
    # prefills that once).
    layout = parts.collate.layout
    joint, alone, span = (layout.prompt_ids("apa", 3, record), layout.prompt_ids("apa_accuracy", 3, record),
                          layout.audio_span(3))  # fmt: skip
    end = next(k + len(span) for k in range(len(joint)) if joint[k : k + len(span)] == span)
    transcript = layout.prompt_ids("mdd", 3, record)
    assert alone[:end] == joint[:end] == transcript[:end] and alone[end:] != transcript[end:]
    assert record.canonical_phones in parts.collate.tokenizer.decode(joint[:end])
    assert parts.collate.tokenizer.decode(alone[end:]).startswith(estimate_line)
    cache = parts.model.causal_lm.model.audio_tower.forward
    before = cache.hits
    parts.loss_fn(parts.model.train(), parts.collate([(record, task)]))
    assert cache.hits == before + 1  # training reads the clip the scorer encoded

    parts.save_final(parts.model, tmp_path / "final_model")
    write_card(
        tmp_path / "final_model", config_to_dict(cfg), epoch=1, step=2, versions={}
    )  # as the engine does
    assert (tmp_path / "final_model" / GOP_FILE).is_file()
    inference = load_for_inference(tmp_path / "final_model", device="cpu")
    assert torch.equal(inference.gop_scorer.weights[0], scorer.weights[0])
    audio = load_audio(record.audio_path)
    model, backbone = parts.model.causal_lm, parts.model.backbone
    (expected,) = recording_estimates(
        scorer, model, backbone, parts.collate.feature_extractor, [record], [audio]
    )
    with BatchedGenerator(
        inference, prompt_style="short", prompt_reference="phones_gop", max_new_tokens=2
    ) as generator:
        batch = generator.prompt_batch([record._record], "apa_accuracy", [audio])
    assert f"Accuracy estimate: {expected['accuracy']}\n" in inference.tokenizer.decode(
        batch["input_ids"][0].tolist()
    )
    assert batch["estimates"] == [expected["accuracy"]]


def test_phones_gop_needs_a_model_with_a_scorer(tiny_qwen2audio_dir, synth_manifest_dir):
    from loralab.speech.data.audio import load_audio
    from loralab.speech.data.records import read_manifest
    from loralab.speech.inference.generate import BatchedGenerator
    from loralab.speech.model.load import load_for_inference

    record = read_manifest(synth_manifest_dir, "train")[0]
    audio = load_audio(record.audio_path)
    inference = load_for_inference(tiny_qwen2audio_dir, device="cpu")
    with BatchedGenerator(inference, prompt_reference="phones_gop") as generator:
        assert "estimates" not in generator.prompt_batch([record], "apa", [audio])
        with pytest.raises(LoralabError, match="no gop_scorer.safetensors"):
            generator.prompt_batch([record], "apa_accuracy", [audio])


def test_a_record_with_its_estimate_survives_pickling_for_dataloader_workers():
    import pickle

    record = SimpleNamespace(id="u1", text="A CAT", canonical_phones="AH K AE T")
    copy = pickle.loads(pickle.dumps(WithEstimate(record, {"accuracy": 6})))
    assert (copy.id, copy.text, copy.estimates) == ("u1", "A CAT", {"accuracy": 6})


def test_a_real_voice_floor_raises_the_threshold_and_never_lowers_it(monkeypatch):
    from loralab.speech.model import real_voices

    records, frames = _synthetic_corpus()
    alone, _, _ = fit_gop_scorer(frames, records, aspects=("accuracy",), steps=150, lr=3e-2, seed=5)
    assert math.isfinite(alone.threshold)
    for floor in (alone.threshold + 7.0, alone.threshold - 7.0):
        seen = []

        def fake(scorer, recordings, max_flagged, floor=floor, seen=seen):
            seen.append((list(recordings), max_flagged))
            return floor, {"threshold": floor}

        monkeypatch.setattr(real_voices, "real_voice_threshold", fake)
        scorer, _, _ = fit_gop_scorer(frames, records, aspects=("accuracy",), steps=150, lr=3e-2, seed=5,
                                      real_voices=[("frames", "a sentence")], real_max_flagged=0.2)  # fmt: skip
        assert seen == [([("frames", "a sentence")], 0.2)]
        diagnosis = scorer.fit_report["diagnosis"]
        assert scorer.threshold == pytest.approx(max(floor, alone.threshold))
        assert diagnosis["threshold_training_speakers"] == pytest.approx(alone.threshold, abs=1e-3)
        assert diagnosis["real_voices"] == {"threshold": floor}
