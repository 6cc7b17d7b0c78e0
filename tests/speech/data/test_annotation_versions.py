"""SpeechOcean762's two versions of its mispronunciation labels, as prepare reads them.

Before the fix of July 2024 (jimbozhang/speechocean762 issues #10, #11; the Hugging Face copy
received it on 2026-04-30) labels carry '*' distortion marks and six non-CMU L2 phones (one
symbol for "D Z"); after it, CMU phones only. Both versions prepare to the same MDD targets, and
summary.json says which version it read and what became of each odd label.
"""

from __future__ import annotations

import json

import pytest

from loralab.speech.data.prepare import prepare_speechocean762

# (word index, phone index) -> label, in the pre-fix and the fixed version of the same judgement.
PRE_FIX = {(0, 0): "DZ", (0, 1): "R*", (1, 0): "<DEL>"}
FIXED = {(0, 0): "D Z", (0, 1): "R", (1, 0): "<DEL>"}


def label_first_utterance(root, utt: str, labels: dict) -> None:
    """Annotate ``utt``'s phones at ``labels`` (their accuracies set low, as the corpus does)."""
    path = root / "resource/scores.json"
    scores = json.loads(path.read_text())
    for w, word in enumerate(scores[utt]["words"]):
        word["mispronunciations"] = []
        for (lw, index), label in labels.items():
            if lw == w and index < len(word["phones"]):
                word["phones-accuracy"][index] = 0.2
                word["mispronunciations"].append(
                    {"canonical-phone": word["phones"][index], "index": index, "pronounced-phone": label}
                )
    path.write_text(json.dumps(scores))


@pytest.mark.parametrize("distortion", ["closest", "unk"])
def test_both_versions_prepare_and_the_summary_names_the_version(mini_corpus, tmp_path, distortion):
    import shutil

    root, ids = mini_corpus
    utt = ids["train"][0]
    fixed_root = shutil.copytree(root, tmp_path / "fixed")
    label_first_utterance(root, utt, PRE_FIX)
    label_first_utterance(fixed_root, utt, FIXED)

    old = prepare_speechocean762(root, tmp_path / "old", distortion=distortion, progress=False)
    new = prepare_speechocean762(fixed_root, tmp_path / "new", distortion=distortion, progress=False)
    summary = json.loads((tmp_path / "old/summary.json").read_text())["mispronunciation_labels"]
    fixed = new.summary["mispronunciation_labels"]
    assert summary["version"] == "pre-2024-07" and summary["labels"] == fixed["labels"] >= 3
    assert summary["odd_labels"] == {
        "DZ": {"count": 1, "became": "D Z"},
        "R*": {"count": 1, "became": "R" if distortion == "closest" else "<unk>"},
    }
    assert (fixed["version"], fixed["odd_labels"]) == ("post-2024-07", {})

    def targets(manifest):
        return [(r.id, r.mdd_answer) for r in manifest.records("train")]

    if distortion == "closest":  # the two versions say the same thing: the same targets
        assert targets(old) == targets(new)
    first = next(r for r in old.records("train") if r.id == utt)
    assert first.words[0].pronounced_phones[:3] == ["D", "Z", "R" if distortion == "closest" else "<unk>"]


def test_a_copy_without_labels_says_so(mini_corpus, tmp_path):
    root, ids = mini_corpus
    path = root / "resource/scores.json"
    scores = json.loads(path.read_text())
    for entry in scores.values():
        for word in entry["words"]:
            word.pop("mispronunciations", None)
    path.write_text(json.dumps(scores))
    manifest = prepare_speechocean762(
        root, tmp_path / "out", allow_missing_mispronunciations=True, progress=False
    )
    assert manifest.summary["mispronunciation_labels"]["version"] == "none"
