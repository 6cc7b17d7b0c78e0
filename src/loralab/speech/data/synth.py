"""``loralab speech synth``: a synthetic SpeechOcean762 with known, injected mispronunciations.

Written in the ORIGINAL release layout, so ``prepare`` reads it like the real corpus::

    WAVE/SPEAKERnnnn/<utt>.WAV     22.05 kHz mono 16-bit (espeak-ng's rate; prepare resamples)
    train/, test/                  wav.scp text utt2spk spk2utt spk2age spk2gender (Kaldi style)
    resource/scores.json           sentence, word and phone scores, mispronunciations
    resource/lexicon.txt, resource/text-phone
    resource/injected.json         the ground truth: per word its canonical phones and the
                                   injected edits, plus pauses, speeds, voice (for tests)

Speakers (about five utterances each) are split by speaker, ~70% train / 30% test, both splits
non-empty. Each has a voice (espeak-ng voice + variant, several accents), a pitch, a base
speaking rate and an error rate. Sentences are 3-7 words from
:data:`~loralab.speech.data.synth_lexicon.VOCABULARY` with CMUdict pronunciations.

Injected errors: each phone is mispronounced with the utterance's error rate (a quarter of the
utterances have none): a consonant is deleted with probability 0.3 when its word keeps a phone,
otherwise the phone is substituted by a typical Mandarin-L1 confusion
(:data:`~loralab.speech.data.synth_lexicon.CONFUSIONS`). The altered phone string is what
espeak-ng speaks (phoneme input ``[[...]]``). Each edit is recorded as a ``mispronunciations``
entry (``<DEL>`` for deletions) and the phone's accuracy is 0.0, 0.2 or 0.4 (< 0.5, as in the
real data); other phones score 2.0 (1.8 or 1.6 now and then: accent, not error).

Scoring rule (e = injected errors / phones, p = mid-sentence pauses, c = rate changes, half-up
rounding, sentence scores clamped to [2, 10])::

    accuracy     = 10 - 20 e
    fluency      = 10 - 2 p - (1 if the slowest rate < 130 wpm)
    prosodic     = 10 - p - 2 c - (1 if any rate < 130 or > 200 wpm)
    completeness = 10
    total        = 0.5 accuracy + 0.25 fluency + 0.25 prosodic
    word accuracy = total = clamp(10 - 20 * errors / phones, 0, 10); word stress = 10

Deterministic for a seed: every random draw happens up front from one generator; espeak-ng
calls then run in parallel threads.
"""

from __future__ import annotations

import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from loralab.errors import LoralabError
from loralab.speech.data.espeak import ESPEAK_SAMPLE_RATE, espeak_binary, espeak_word, speak_phonemes
from loralab.speech.data.phones import cmudict_pronunciation, is_vowel, strip_stress
from loralab.speech.data.synth_lexicon import CONFUSIONS, VOCABULARY, VOICES

UTTERANCES_PER_SPEAKER = 5
TRAIN_FRACTION = 0.7
ERROR_RATES = (0.0, 0.04, 0.08, 0.14, 0.22)  # per-speaker skill levels
CHUNK_GAP_SECONDS = 0.06  # between chunks spoken at different rates, without a pause


def _half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def _clamp(x: float, low: int, high: int) -> int:
    return max(low, min(high, _half_up(x)))


@dataclass
class Speaker:
    number: int
    split: str
    gender: str
    age: int
    voice: str
    pitch: int
    speed: int
    error_rate: float
    pause_rate: float

    @property
    def id(self) -> str:
        return f"{self.number:04d}"


@dataclass
class Word:
    text: str
    canonical: list[str]  # with stress, as in CMUdict
    edits: dict[int, str] = field(default_factory=dict)  # phone index -> substitute or "<DEL>"
    accuracies: list[float] = field(default_factory=list)

    def spoken(self) -> list[tuple[str, str]]:
        """(phone, stress digit) actually spoken: substitutes keep the canonical phone's stress."""
        out = []
        for i, phone in enumerate(self.canonical):
            replacement = self.edits.get(i, phone)
            if replacement != "<DEL>":
                out.append((strip_stress(replacement), phone[len(strip_stress(phone)) :]))
        return out


@dataclass
class Utterance:
    id: str
    speaker: Speaker
    words: list[Word]
    chunks: list[list[int]]  # word indices spoken per espeak call
    pauses: list[float]  # silence (s) after each chunk but the last
    speeds: list[int]  # words per minute per chunk
    lead: float
    tail: float

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words)

    @property
    def wav_path(self) -> str:
        return f"WAVE/SPEAKER{self.speaker.id}/{self.id}.WAV"

    def scores(self) -> dict:
        phones = sum(len(w.canonical) for w in self.words)
        errors = sum(len(w.edits) for w in self.words)
        pauses = sum(1 for p in self.pauses if p > CHUNK_GAP_SECONDS)
        changes = sum(1 for a, b in zip(self.speeds, self.speeds[1:]) if a != b)
        slow = min(self.speeds) < 130
        accuracy = _clamp(10 - 20 * errors / phones, 2, 10)
        fluency = _clamp(10 - 2 * pauses - slow, 2, 10)
        prosodic = _clamp(10 - pauses - 2 * changes - (slow or max(self.speeds) > 200), 2, 10)
        total = _clamp(0.5 * accuracy + 0.25 * fluency + 0.25 * prosodic, 0, 10)
        words = []
        for w in self.words:
            word_accuracy = _clamp(10 - 20 * len(w.edits) / len(w.canonical), 0, 10)
            words.append(
                {
                    "text": w.text,
                    "accuracy": word_accuracy,
                    "stress": 10,
                    "total": word_accuracy,
                    "phones": list(w.canonical),
                    "phones-accuracy": list(w.accuracies),
                    "mispronunciations": [
                        {"canonical-phone": strip_stress(w.canonical[i]), "index": i, "pronounced-phone": sub}
                        for i, sub in sorted(w.edits.items())
                    ],
                }
            )
        return {
            "text": self.text,
            "accuracy": accuracy,
            "completeness": 10.0,
            "fluency": fluency,
            "prosodic": prosodic,
            "total": total,
            "words": words,
        }


def _plan_speakers(n: int, rng: np.random.Generator) -> list[tuple[Speaker, int]]:
    count = max(2, math.ceil(n / UTTERANCES_PER_SPEAKER))
    train = min(count - 1, max(1, _half_up(TRAIN_FRACTION * count)))
    speakers = []
    for k in range(count):
        voice, gender = VOICES[int(rng.integers(len(VOICES)))]
        child = bool(rng.random() < 0.5)
        speaker = Speaker(
            number=k + 1,
            split="train" if k < train else "test",
            gender=gender,
            age=int(rng.integers(6, 16) if child else rng.integers(19, 44)),
            voice=voice,
            pitch=int(rng.integers(60, 86) if child else rng.integers(35, 66)),
            speed=int(rng.integers(130, 196)),
            error_rate=float(ERROR_RATES[int(rng.integers(len(ERROR_RATES)))]),
            # wide, so fluency spreads over 10..2: on a corpus where most answers are 10 a
            # small model learns to answer 10 (the mode) long before it learns to listen
            pause_rate=float(rng.choice([0.0, 0.2, 0.4, 0.6])),
        )
        speakers.append((speaker, n // count + (1 if k < n % count else 0)))
    return speakers


def _plan_word(text: str, error_rate: float, rng: np.random.Generator) -> Word:
    canonical = cmudict_pronunciation(text)
    if canonical is None:  # pragma: no cover - the vocabulary is checked by a test
        raise LoralabError(f"synthetic vocabulary word '{text}' is not in CMUdict")
    word = Word(text=text.upper(), canonical=canonical)
    for i, phone in enumerate(canonical):
        base = strip_stress(phone)
        if rng.random() >= error_rate:
            word.accuracies.append(float(rng.choice([2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 1.8, 1.6])))
            continue
        kept = len(canonical) - sum(1 for e in word.edits.values() if e == "<DEL>")
        if not is_vowel(phone) and kept > 1 and rng.random() < 0.3:
            word.edits[i] = "<DEL>"
        else:
            choices = CONFUSIONS[base]
            word.edits[i] = str(choices[int(rng.integers(len(choices)))])
        word.accuracies.append(float(rng.choice([0.0, 0.2, 0.4])))
    return word


def _plan_utterance(utt_id: str, speaker: Speaker, rng: np.random.Generator) -> Utterance:
    n_words = int(rng.integers(3, 8))
    texts = [VOCABULARY[int(i)] for i in rng.integers(len(VOCABULARY), size=n_words)]
    error_rate = 0.0 if rng.random() < 0.25 else speaker.error_rate * float(rng.uniform(0.5, 1.5))
    words = [_plan_word(t, error_rate, rng) for t in texts]
    chunks, pauses, current = [], [], [0]
    for i in range(1, n_words):
        if rng.random() < speaker.pause_rate:
            chunks.append(current)
            pauses.append(float(rng.uniform(0.35, 0.9)))
            current = []
        current.append(i)
    chunks.append(current)
    speed = speaker.speed + int(rng.integers(-10, 11))
    speeds = [speed] * len(chunks)
    if len(chunks) > 1 and rng.random() < 0.3:  # an unsteady rate: one chunk faster or slower
        k = int(rng.integers(len(chunks)))
        speeds[k] = int(np.clip(speed + int(rng.choice([-50, -40, 40, 50])), 90, 260))
    elif len(chunks) == 1 and n_words >= 4 and rng.random() < 0.1:
        cut = int(rng.integers(2, n_words))
        chunks = [list(range(cut)), list(range(cut, n_words))]
        pauses = [CHUNK_GAP_SECONDS]
        speeds = [speed, int(np.clip(speed + int(rng.choice([-50, 50])), 90, 260))]
    return Utterance(
        id=utt_id,
        speaker=speaker,
        words=words,
        chunks=chunks,
        pauses=pauses,
        speeds=speeds,
        lead=float(rng.uniform(0.05, 0.3)),
        tail=float(rng.uniform(0.05, 0.3)),
    )


def _silence(seconds: float) -> np.ndarray:
    return np.zeros(int(round(seconds * ESPEAK_SAMPLE_RATE)), np.float32)


def _render(utt: Utterance, root: Path, binary: str) -> None:
    """Speak each chunk with espeak-ng, join with the planned silences, write the WAV."""
    import soundfile as sf

    pieces = [_silence(utt.lead)]
    for k, chunk in enumerate(utt.chunks):
        phonemes = " ".join(espeak_word(utt.words[i].spoken()) for i in chunk)
        voice = utt.speaker.voice
        pieces.append(speak_phonemes(phonemes, voice, utt.speeds[k], utt.speaker.pitch, binary))
        if k < len(utt.pauses):
            pieces.append(_silence(utt.pauses[k]))
    pieces.append(_silence(utt.tail))
    path = root / utt.wav_path
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.concatenate(pieces), ESPEAK_SAMPLE_RATE, subtype="PCM_16", format="WAV")


def _write_text(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def _write_layout(root: Path, utterances: list[Utterance]) -> None:
    for split in ("train", "test"):
        items = [u for u in utterances if u.speaker.split == split]
        speakers = {u.speaker.id: u.speaker for u in items}
        folder = root / split
        _write_text(folder / "wav.scp", [f"{u.id}\t{u.wav_path}" for u in items])
        _write_text(folder / "text", [f"{u.id}\t{u.text}" for u in items])
        _write_text(folder / "utt2spk", [f"{u.id}\t{u.speaker.id}" for u in items])
        _write_text(
            folder / "spk2utt",
            [f"{s} " + " ".join(u.id for u in items if u.speaker.id == s) for s in sorted(speakers)],
        )
        _write_text(folder / "spk2age", [f"{s}\t{speakers[s].age}" for s in sorted(speakers)])
        _write_text(folder / "spk2gender", [f"{s}\t{speakers[s].gender}" for s in sorted(speakers)])
    resource = root / "resource"
    resource.mkdir(parents=True, exist_ok=True)
    scores = {u.id: u.scores() for u in utterances}
    (resource / "scores.json").write_text(json.dumps(scores, indent=2) + "\n", encoding="utf-8")
    lexicon = {w.text: " ".join(w.canonical) for u in utterances for w in u.words}
    _write_text(resource / "lexicon.txt", [f"{t}\t{lexicon[t]}" for t in sorted(lexicon)])
    text_phone = []
    for u in utterances:
        for k, w in enumerate(u.words):
            marks = ["_S"] if len(w.canonical) == 1 else ["_B"] + ["_I"] * (len(w.canonical) - 2) + ["_E"]
            text_phone.append(f"{u.id}.{k}\t" + " ".join(p + m for p, m in zip(w.canonical, marks)))
    _write_text(resource / "text-phone", text_phone)
    truth = {
        u.id: {
            "split": u.speaker.split,
            "voice": u.speaker.voice,
            "speeds": u.speeds,
            "pauses": u.pauses,
            "words": [
                {
                    "text": w.text,
                    "canonical": w.canonical,
                    "edits": [{"index": i, "pronounced": s} for i, s in sorted(w.edits.items())],
                }
                for w in u.words
            ],
        }
        for u in utterances
    }
    (resource / "injected.json").write_text(json.dumps(truth, indent=1) + "\n", encoding="utf-8")


def synthesize_corpus(
    out_dir: str | Path, n: int, seed: int, *, workers: int | None = None, espeak: str | None = None
) -> Path:
    """Write ``n`` synthetic utterances in SpeechOcean762's original layout to ``out_dir``; returns it."""
    if n < 2:
        raise LoralabError(f"--n must be at least 2 (one utterance per split), got {n}")
    binary = espeak_binary(espeak)
    root = Path(out_dir)
    rng = np.random.default_rng(seed)
    utterances = []
    for speaker, count in _plan_speakers(n, rng):
        for k in range(count):
            utterances.append(_plan_utterance(f"{speaker.number:05d}{k + 1:04d}", speaker, rng))
    from tqdm.auto import tqdm

    workers = workers or max(1, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        jobs = [pool.submit(_render, u, root, binary) for u in utterances]
        for job in tqdm(jobs, desc="synth", unit="utt", disable=len(jobs) < 100):
            job.result()
    _write_layout(root, utterances)
    return root
