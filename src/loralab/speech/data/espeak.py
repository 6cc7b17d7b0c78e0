"""A thin wrapper over the ``espeak-ng`` program: ARPAbet phones in, 22.05 kHz samples out.

espeak-ng reads phoneme mnemonics between ``[[`` and ``]]`` (its own Kirshenbaum-like
alphabet), which is how the synthetic corpus speaks *altered* phone strings: the injected
substitutions and deletions are really in the audio, not only in the labels.
"""

from __future__ import annotations

import io
import shutil
import subprocess

import numpy as np

from loralab.errors import LoralabError
from loralab.speech.data.phones import strip_stress

ESPEAK_SAMPLE_RATE = 22050
INSTALL_HINT = (
    "espeak-ng is not installed (it speaks the synthetic corpus). Install it: "
    "Debian/Ubuntu 'sudo apt-get install espeak-ng', macOS 'brew install espeak-ng' "
    "('make test' and 'make demo' install it when they can)"
)
# ARPAbet -> espeak-ng English phoneme mnemonics (checked with `espeak-ng -x`). AH and ER differ
# by stress: unstressed AH0 is schwa "@", stressed AH1 is "V"; ER0 is "3", ER1 is "3:".
ARPABET_TO_ESPEAK = {
    "AA": "A:", "AE": "a", "AH": "V", "AO": "O:", "AW": "aU", "AY": "aI", "EH": "E", "ER": "3:",
    "EY": "eI", "IH": "I", "IY": "i:", "OW": "oU", "OY": "OI", "UH": "U", "UW": "u:",
    "B": "b", "CH": "tS", "D": "d", "DH": "D", "F": "f", "G": "g", "HH": "h", "JH": "dZ", "K": "k",
    "L": "l", "M": "m", "N": "n", "NG": "N", "P": "p", "R": "r", "S": "s", "SH": "S", "T": "t",
    "TH": "T", "V": "v", "W": "w", "Y": "j", "Z": "z", "ZH": "Z",
}  # fmt: skip
_UNSTRESSED = {"AH": "@", "ER": "3"}
_STRESS_MARK = {"1": "'", "2": ","}


def espeak_binary(path: str | None = None) -> str:
    """The espeak-ng executable, or a ``LoralabError`` saying how to install it."""
    found = shutil.which(path or "espeak-ng")
    if found is None:
        raise LoralabError(
            INSTALL_HINT if path is None else f"espeak-ng not found at '{path}'. {INSTALL_HINT}"
        )
    return found


def espeak_phone(phone: str, stress: str = "") -> str:
    """One ARPAbet phone (stress digit optional, or given separately) as an espeak mnemonic."""
    base = strip_stress(phone)
    stress = stress or phone[len(base) :]
    if base in _UNSTRESSED and stress in ("", "0"):
        return _UNSTRESSED[base]
    return _STRESS_MARK.get(stress, "") + ARPABET_TO_ESPEAK[base]


def espeak_word(phones: list[tuple[str, str]]) -> str:
    """A word's phones, each ``(ARPAbet phone, stress digit)``, as one espeak phoneme word."""
    return "".join(espeak_phone(phone, stress) for phone, stress in phones)


def speak_phonemes(
    phonemes: str, voice: str = "en-us", speed: int = 160, pitch: int = 50, binary: str | None = None
) -> np.ndarray:
    """Speak an espeak phoneme string (words separated by spaces): float32 samples at 22.05 kHz."""
    import soundfile as sf

    command = [espeak_binary(binary), "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout"]
    try:
        result = subprocess.run([*command, f"[[{phonemes}]]"], capture_output=True, check=True, timeout=60)
    except subprocess.CalledProcessError as e:
        raise LoralabError(f"espeak-ng failed on '{phonemes}': {e.stderr.decode(errors='replace')}") from e
    samples, rate = sf.read(io.BytesIO(result.stdout), dtype="float32")
    if rate != ESPEAK_SAMPLE_RATE:  # pragma: no cover - espeak-ng's rate is fixed
        raise LoralabError(f"espeak-ng produced {rate} Hz audio, expected {ESPEAK_SAMPLE_RATE}")
    return samples if samples.ndim == 1 else samples.mean(axis=1)
