"""Audio decoding for the speech system: soundfile to decode, a channel mean to downmix, scipy's
polyphase filter (``resample_poly``) to resample. No torchaudio, torchcodec or ffmpeg.

Every check names the file or utterance: unreadable or corrupt data, no samples, a sample rate
below :data:`MIN_SAMPLE_RATE`, or a signal whose peak is below :data:`SILENCE_PEAK` (all silent).
"""

from __future__ import annotations

import io
from functools import cache
from math import gcd
from pathlib import Path

import numpy as np

from loralab.errors import DataError

TARGET_SAMPLE_RATE = 16000
MIN_SAMPLE_RATE = 8000
# Peak amplitude (full scale 1.0) below which a recording counts as silent: ~3 LSB of 16-bit PCM.
SILENCE_PEAK = 1e-4


class ChannelsCancel(DataError):
    """Channels loud alone, silent mixed to mono (one is phase-inverted)."""


def waveform_key(waveform) -> str:
    """A content key of a waveform (sha1 of its float32 samples): the same recording, the same key."""
    import hashlib

    return hashlib.sha1(np.ascontiguousarray(waveform, dtype=np.float32).tobytes()).hexdigest()


def decode_audio(
    source: str | Path | bytes, name: str | None = None, max_frames: int | None = None
) -> tuple[np.ndarray, int]:
    """Decode a file or in-memory bytes to (float32 mono samples, sample rate), unchecked otherwise;
    ``max_frames``: decode at most that many frames (a bound that does not trust the header)."""
    import soundfile as sf

    label = name or str(source if not isinstance(source, bytes) else "<bytes>")
    if not isinstance(source, bytes) and not Path(source).is_file():
        raise DataError(f"{label}: audio file not found ({source})")
    check_wav_length(source, label)
    try:
        data, sample_rate = sf.read(
            io.BytesIO(source) if isinstance(source, bytes) else str(source),
            frames=-1 if max_frames is None else max_frames,
            dtype="float32",
            always_2d=True,
        )
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as e:
        raise DataError(f"{label}: cannot decode audio (corrupt or unsupported format: {e})") from e
    mono = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)
    _check_cancelled_channels(data, mono, label)
    return np.ascontiguousarray(mono), int(sample_rate)


def _check_cancelled_channels(data: np.ndarray, mono: np.ndarray, label: str) -> None:
    """Channels that are loud alone but silent mixed (one phase-inverted) are an error saying so,
    not "silent": the fix is in the file (keep one channel), not in the recording."""
    if data.shape[1] < 2 or not data.size:
        return
    channel_peak = float(np.abs(data).max())
    mixed_peak = float(np.abs(mono).max())
    if channel_peak >= SILENCE_PEAK and mixed_peak < SILENCE_PEAK:
        raise ChannelsCancel(
            f"{label}: its {data.shape[1]} channels cancel out when mixed to mono (peak {channel_peak:.2f} in a "
            f"channel, {mixed_peak:.1e} mixed): one channel is phase-inverted. Keep one channel "
            "(e.g. sox in.wav out.wav remix 1) or invert one, and send that file"
        )


def check_wav_length(source: str | Path | bytes, label: str) -> None:
    """A WAV whose header promises more audio than the file holds (a cut-off copy) is an error:
    decoders would quietly return the shorter part, scored as the whole sentence."""
    if isinstance(source, bytes):
        head, size = source[:_WAV_HEAD_BYTES], len(source)
    else:
        with open(source, "rb") as f:
            head = f.read(_WAV_HEAD_BYTES)
        size = Path(source).stat().st_size
    promised = _wav_data_promise(head, size)
    if promised is None:
        return
    declared, available, bytes_per_second = promised
    if declared > available + max(1, bytes_per_second // 1000):  # more than ~1 ms missing
        raise DataError(
            f"{label}: truncated WAV: its header promises {declared / bytes_per_second:.2f} s of audio but "
            f"the file holds {max(available, 0) / bytes_per_second:.2f} s (a cut-off copy?); "
            "copy or export the file again"
        )


_WAV_HEAD_BYTES = 1 << 16


def _wav_data_promise(head: bytes, size: int) -> tuple[int, int, int] | None:
    """(bytes the 'data' chunk declares, bytes present after its header, bytes per second) of a
    RIFF/WAVE file, or None when it is not one (or the sizes are the streaming placeholders)."""
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    offset, bytes_per_second = 12, 0
    while offset + 8 <= len(head):
        chunk, length = head[offset : offset + 4], int.from_bytes(head[offset + 4 : offset + 8], "little")
        if chunk == b"fmt " and offset + 16 <= len(head):
            bytes_per_second = int.from_bytes(head[offset + 16 : offset + 20], "little")
        if chunk == b"data":
            if length in (0, 0xFFFFFFFF) or bytes_per_second <= 0:
                return None
            return length, size - (offset + 8), bytes_per_second
        offset += 8 + length + (length & 1)
    return None


def count_clipped(samples: np.ndarray) -> int:
    """Samples beyond full scale (|x| > 1: only float formats can hold them); 16-bit output clips them."""
    return int(np.count_nonzero(np.abs(samples) > 1.0))


def check_audio(samples: np.ndarray, sample_rate: int, name: str) -> None:
    """Raise ``DataError`` for an empty or all-silent signal or a sample rate below 8 kHz."""
    if sample_rate < MIN_SAMPLE_RATE:
        raise DataError(
            f"{name}: sample rate {sample_rate} Hz is below {MIN_SAMPLE_RATE} Hz; "
            "speech models need at least 8 kHz (re-record or use the original files)"
        )
    if samples.size == 0:
        raise DataError(f"{name}: the audio is empty (0 samples)")
    peak = float(np.max(np.abs(samples)))
    if not np.isfinite(peak):
        raise DataError(f"{name}: the audio holds NaN or infinite samples")
    if peak < SILENCE_PEAK:
        raise DataError(f"{name}: the audio is silent (peak amplitude {peak:.2e})")
    offset = float(np.mean(samples, dtype=np.float64))
    if float(np.max(np.abs(samples - offset))) < SILENCE_PEAK:  # a constant level: no sound in it
        raise DataError(f"{name}: the audio is silent: a constant level of {offset:+.3f} (a DC offset only)")


@cache
def _polyphase_filter(up: int, down: int) -> tuple[np.ndarray, int]:
    """scipy ``resample_poly``'s default filter (Kaiser beta 5, 10 zero crossings per side), padded
    and with the output offset exactly as resample_poly computes them; designed once per ratio
    (the design costs more than the filtering of a whole utterance)."""
    from scipy.signal import firwin

    max_rate = max(up, down)
    half_len = 10 * max_rate
    taps = firwin(2 * half_len + 1, 1.0 / max_rate, window=("kaiser", 5.0)) * up
    pre_pad = down - half_len % down
    pre_remove = (half_len + pre_pad) // down
    # resample_poly also pads the end so the output is long enough; len(x) decides how much, so
    # we pad generously once instead (zeros past the end do not change any kept sample).
    padded = np.concatenate([np.zeros(pre_pad), taps, np.zeros(2 * down)]).astype(np.float32)
    return padded, pre_remove


def resample(samples: np.ndarray, sample_rate: int, target_rate: int = TARGET_SAMPLE_RATE) -> np.ndarray:
    """Polyphase resampling by the reduced ratio target/source, equal to scipy's ``resample_poly``
    with its default window (float32 arithmetic; the filter is cached per ratio)."""
    if sample_rate == target_rate:
        return samples
    from scipy.signal import upfirdn

    common = gcd(int(sample_rate), int(target_rate))
    up, down = target_rate // common, sample_rate // common
    taps, pre_remove = _polyphase_filter(up, down)
    n_out = -(-len(samples) * up // down)  # ceil
    out = upfirdn(taps, samples.astype(np.float32, copy=False), up, down)
    return out[pre_remove : pre_remove + n_out]


def load_audio(path: str | Path, target_sr: int = TARGET_SAMPLE_RATE) -> np.ndarray:
    """Decode, check, downmix and resample an audio file: float32 mono samples at ``target_sr``."""
    samples, sample_rate = decode_audio(path)
    check_audio(samples, sample_rate, str(path))
    return resample(samples, sample_rate, target_sr)


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int = TARGET_SAMPLE_RATE) -> None:
    """Write 16-bit PCM WAV (clipped to [-1, 1], as resampling may overshoot a full-scale input)."""
    import soundfile as sf

    # Quantise here: libsndfile's own float->int conversion is several times slower. Encode in
    # memory and write the bytes ourselves: soundfile's close() fsyncs, which costs ~4 ms a file.
    pcm = np.rint(np.clip(samples, -1.0, 1.0) * 32767.0).astype(np.int16)
    buffer = io.BytesIO()
    sf.write(buffer, pcm, sample_rate, subtype="PCM_16", format="WAV")
    Path(path).write_bytes(buffer.getvalue())
