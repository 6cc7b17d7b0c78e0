"""`loralab assess`: per-word diagnosis against CMUdict (hand-worked), the report and JSON on
the tiny model, the batch forms, and clear errors for bad input."""

from __future__ import annotations

import json

import numpy as np
import soundfile as sf

from loralab.cli.main import main as cli_main
from loralab.speech.scoring.word_diagnosis import diagnose_words


def test_diagnosis_against_cmudict_hand_worked():
    # CMUdict: WE = W IY1, CALL = K AO1 L, IT = IH1 T; BLORF is not in CMUdict (guessed).
    words = diagnose_words("We call it blorf.", "W IY IY K AA L T B L AO R F S")
    assert [w.word for w in words] == ["WE", "CALL", "IT", "BLORF"]
    we, call, it, blorf = words
    assert we.canonical == ["W", "IY"] and we.heard == ["W", "IY", "IY"]
    assert [(e.kind, e.expected, e.heard) for e in we.errors] == [("inserted", None, "IY")]
    assert [(e.kind, e.expected, e.heard) for e in call.errors] == [("substituted", "AO", "AA")]
    assert [(e.kind, e.expected, e.heard) for e in it.errors] == [("deleted", "IH", None)]
    assert it.heard == ["T"]
    assert blorf.lexicon == "guessed" and call.lexicon == "cmudict"
    assert blorf.errors[-1].kind == "inserted" and blorf.errors[-1].heard == "S"


def test_diagnosis_without_phones_keeps_words():
    words = diagnose_words("We call", None)
    assert [w.canonical for w in words] == [["W", "IY"], ["K", "AO", "L"]]
    assert all(w.heard == [] and w.ok for w in words)


def test_assess_single_report_and_json(tiny_model_dir, wav, capsys):
    code = cli_main(["assess", "--model", str(tiny_model_dir), "--audio", str(wav), "--text", "We call it bear",
                     "--max-new-tokens", "12"])  # fmt: skip
    out = capsys.readouterr().out
    assert code in (0, 1)  # 1: the random tiny model's answer is not readable, and says so
    assert "scores (0-10):" in out and "heard (phones):" in out
    assert "CALL" in out and "K AO L" in out
    if code == 1:
        assert "could not read" in out
    code = cli_main(["assess", "--model", str(tiny_model_dir), "--audio", str(wav), "--text", "We call blorf",
                     "--max-new-tokens", "12", "--json"])  # fmt: skip
    data = json.loads(capsys.readouterr().out)
    assert set(data) >= {
        "scores",
        "word_transcript",
        "phoneme_transcript",
        "words",
        "notes",
        "failures",
        "raw",
    }
    assert [w["word"] for w in data["words"]] == ["WE", "CALL", "BLORF"]
    assert data["words"][2]["lexicon"] == "guessed"
    assert any("BLORF" in n and "CMUdict" in n for n in data["notes"])
    assert set(data["raw"]) == {"apa", "mdd"}
    for key in data["scores"]:  # whatever parsed is a number in range; nothing defaulted to 0
        assert 0 <= data["scores"][key] <= 10
    assert set(data["scores"]) | {k.split(".")[1] for k in data["failures"] if k.startswith("apa.")} == {
        "accuracy",
        "fluency",
        "prosodic",
        "total",
    }


def test_assess_batch_forms(tiny_model_dir, wav, tmp_path, capsys):
    folder = tmp_path / "takes"
    folder.mkdir()
    (folder / "a.wav").write_bytes(wav.read_bytes())
    (folder / "a.txt").write_text("We call it bear\n")
    (folder / "b.wav").write_bytes(wav.read_bytes())
    (folder / "b.txt").write_text("Good morning")
    cli_main(
        [
            "assess",
            "--model",
            str(tiny_model_dir),
            "--audio-dir",
            str(folder),
            "--json",
            "--max-new-tokens",
            "8",
        ]
    )
    data = json.loads(capsys.readouterr().out)
    assert [d["text"] for d in data] == ["We call it bear", "Good morning"]
    csv_file = tmp_path / "list.csv"
    csv_file.write_text("audio,text\ntakes/a.wav,Hello there\n")
    cli_main(
        ["assess", "--model", str(tiny_model_dir), "--csv", str(csv_file), "--json", "--max-new-tokens", "8"]
    )
    data = json.loads(capsys.readouterr().out)
    assert len(data) == 1 and data[0]["audio"].endswith("a.wav")


def test_assess_bad_input_errors(tiny_model_dir, wav, tmp_path, capsys):
    model = ["assess", "--model", str(tiny_model_dir)]

    def error(args) -> str:
        assert cli_main(model + args) == 2
        return capsys.readouterr().err

    assert "reference text is empty" in error(["--audio", str(wav), "--text", "  "])
    assert "needs --text" in error(["--audio", str(wav)])
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not really a wave file")
    err = error(["--audio", str(broken), "--text", "hello"])
    assert "broken.wav" in err and "cannot decode" in err
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, dtype=np.float32), 16000)
    assert "empty.wav" in error(["--audio", str(empty), "--text", "hello"])
    assert "not found" in error(["--audio", str(tmp_path / "missing.wav"), "--text", "hello"])
    folder = tmp_path / "no_text"
    folder.mkdir()
    (folder / "x.wav").write_bytes(wav.read_bytes())
    assert "x.txt" in error(["--audio-dir", str(folder)])
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("file,sentence\nx.wav,hi\n")
    assert "'audio' and 'text'" in error(["--csv", str(bad_csv)])
    assert "nothing to assess" in error([])


def test_assess_merges_one_aspect_at_a_time_and_reads_expected_scores(tiny_model_dir, wav, monkeypatch):
    """A model trained one aspect at a time is asked each aspect; expected decoding gives its scores."""
    from loralab.speech.inference.fast_decode import FastDecoder
    from loralab.speech.inference.generate import BatchedGenerator, GeneratedAnswer
    from loralab.speech.inference.recording_answers import AssessItem, assess_items
    from loralab.speech.model.load import load_for_inference

    asked = []

    def scripted(self, task, audios, rows):
        asked.append(task)
        if task == "mdd":
            raw = '{"word_transcript": "we call it bear", "phoneme_transcript": "W IY K AO L IH T B EH R"}'
            return [GeneratedAnswer(r.id, task, raw, 9, False) for r in rows]
        aspect = task.removeprefix("apa_")
        return [GeneratedAnswer(r.id, task, json.dumps({aspect: 7}), 5, False, {aspect: 6.25}) for r in rows]

    monkeypatch.setattr(BatchedGenerator, "generate", scripted)
    monkeypatch.setattr(
        FastDecoder, "answer", lambda self, task, audio, row, **_: scripted(self, task, [audio], [row])[0]
    )
    tasks = ["apa_accuracy", "apa_fluency", "apa_prosodic", "apa_total"]
    item = AssessItem("1", str(wav), "We call it bear")
    inference = load_for_inference(tiny_model_dir, device="cpu")
    (greedy,) = assess_items(inference, [item], apa_tasks=tasks)
    (expected,) = assess_items(inference, [item], apa_tasks=tasks, score_decoding="expected")
    assert asked == [*tasks, "mdd"] * 2
    assert greedy.scores == dict.fromkeys(("accuracy", "fluency", "prosodic", "total"), 7.0)
    assert expected.scores == dict.fromkeys(("accuracy", "fluency", "prosodic", "total"), 6.2)
    assert not greedy.failures and all(w.ok for w in greedy.words)
