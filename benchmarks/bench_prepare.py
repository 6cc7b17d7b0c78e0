"""Throughput of ``loralab speech prepare`` (utterances/s, decode + resample + write included).

Corpus: a synthetic SpeechOcean762 of ~200 utterances (espeak-ng, 22.05 kHz, so every file is
resampled to 16 kHz). Figure: ``prepare_speechocean762`` as shipped (thread pool, cached
polyphase filter, in-memory WAV encoding). Baseline, same run, same pipeline: the naive audio
path - one thread, ``scipy.signal.resample`` (FFT) and ``soundfile.write`` to the path.
Target: >= 200 utterances/s on 2 cores. Writes ``benchmarks/results/prepare.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_UTT_PER_S = 200.0


def naive_convert_audio(audio, destination: Path, name: str) -> float:
    """The straightforward path: FFT resampling, soundfile writing floats to the path."""
    import soundfile as sf
    from scipy.signal import resample as fft_resample

    from loralab.speech.data.audio import check_audio, decode_audio

    samples, rate = decode_audio(audio, name)
    check_audio(samples, rate, name)
    if rate != 16000:
        samples = fft_resample(samples, int(round(len(samples) * 16000 / rate))).astype(np.float32)
    sf.write(str(destination), np.clip(samples, -1, 1), 16000, subtype="PCM_16")
    return len(samples) / 16000


def timed_prepare(corpus: Path, out: Path, workers: int | None) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds of this process's threads, utterances prepared)."""
    from loralab.speech.data.prepare import prepare_speechocean762

    start, cpu_start = time.perf_counter(), time.process_time()
    manifest = prepare_speechocean762(corpus, out, workers=workers, progress=False)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return elapsed, cpu, sum(len(records) for records in manifest.splits.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="synthetic utterances")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of the shipped path (median)")
    args = parser.parse_args(argv)

    import scipy.signal  # noqa: F401 - import cost (~1-3 s) is not prepare's per-utterance cost

    import loralab.speech.data.prepare as prepare_module
    from loralab.errors import LoralabError
    from loralab.speech.data.prepare import default_workers
    from loralab.speech.data.synth import synthesize_corpus

    with tempfile.TemporaryDirectory(prefix="bench_prepare_") as tmp:
        corpus = Path(tmp) / "so"
        start = time.perf_counter()
        try:
            synthesize_corpus(corpus, n=args.n, seed=0)
        except LoralabError as e:
            print(f"skipped: {e}")
            return 0
        synth_seconds = time.perf_counter() - start
        audio_seconds = sum(soundfile.info(str(p)).duration for p in corpus.glob("WAVE/*/*.WAV"))
        timed_prepare(corpus, Path(tmp) / "warmup", None)  # page cache, filter design

        timings = [timed_prepare(corpus, Path(tmp) / f"ours{i}", None) for i in range(args.repeats)]
        runs = [wall for wall, _, _ in timings]
        ours = args.n / statistics.median(runs)
        ours_cpu_ms = 1000 * statistics.median(cpu for _, cpu, _ in timings) / args.n

        original = prepare_module.convert_audio
        prepare_module.convert_audio = naive_convert_audio
        try:
            baseline_seconds, baseline_cpu, count = timed_prepare(corpus, Path(tmp) / "baseline", 1)
        finally:
            prepare_module.convert_audio = original
        assert count == args.n
        baseline = args.n / baseline_seconds

    ratio = ours / baseline
    result = {
        "name": "prepare",
        "utterances": args.n,
        "audio_seconds": round(audio_seconds, 1),
        "workers": default_workers(),
        "cpu_count": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "utt_per_s": round(ours, 1),
        "utt_per_s_runs": [round(args.n / r, 1) for r in runs],
        "baseline": "1 thread, scipy.signal.resample (FFT), soundfile.write to path",
        "baseline_utt_per_s": round(baseline, 1),
        # CPU per utterance is what contention (a busy machine) changes least
        "cpu_ms_per_utt": round(ours_cpu_ms, 2),
        "baseline_cpu_ms_per_utt": round(1000 * baseline_cpu / args.n, 2),
        "ratio": round(ratio, 2),
        "target_utt_per_s": TARGET_UTT_PER_S,
        "meets_target": ours >= TARGET_UTT_PER_S,
        "synth_utt_per_s": round(args.n / synth_seconds, 1),
        "summary": f"{ours:.0f} utt/s vs baseline {baseline:.0f} utt/s (target {TARGET_UTT_PER_S:.0f})",
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "prepare.json").write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"prepare: {ours:.0f} utt/s ({ours * audio_seconds / args.n:.0f}x real time) with "
        f"{result['workers']} workers, {ours_cpu_ms:.1f} CPU ms/utt; baseline {baseline:.0f} utt/s "
        f"({result['baseline_cpu_ms_per_utt']:.1f} CPU ms/utt); ratio {ratio:.2f}x; "
        f"target {TARGET_UTT_PER_S:.0f} utt/s {'met' if result['meets_target'] else 'NOT met'} "
        f"(load average {result['load_average_1min']}); synth {result['synth_utt_per_s']} utt/s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
