"""`loralab serve` latency and throughput on the demo's trained speech model, on CPU.

The server runs in process on a free loopback port (uvicorn in a thread, the real app, queue
and model); clients post ~5 s recordings of the model's own test split (the synthetic
corpus; padded or cut to exactly 5.0 s) with their sentences over HTTP. Every request is a
recording of its own (none repeats: the audio encoder's output cache never hits). In the same
run, the same model and server:

* baseline, one by one: the route the service took before, which the evaluation still takes
  (batched greedy ``generate`` of both answers, expected scores from its probabilities;
  ``Assessor(fast=False)``);
* fast, one by one: the service's route now (one recording on the KV cache: the APA answer
  constrained to its JSON template, the MDD answer verified against the ideal one, the
  encoder over the real frames; :mod:`loralab.speech.inference.fast_decode`);
* fast, concurrent: ``--clients`` clients at once (requests batched onto the model).

Figures per phase: p50/p95 latency per request (client side), throughput (recordings/s) and
process CPU seconds per request (server and clients: what a shared machine's other load
changes least). Ratios: baseline p50/p95 over fast p50/p95 (the speed-up), and concurrent
throughput over one-by-one throughput, and (same run) one by one with the model in fp32. Target: p95 <= 0.6 s one by one for a 5 s recording on 2
cores. Writes ``benchmarks/results/serve.json`` (with the cores, torch threads and the load
average before and after).

Usage: ``python benchmarks/bench_serve.py [--model RUN_OR_MODEL_DIR_OR_DEMO_OUTPUT] [--requests 12]
[--clients 8] [--baseline-requests N] [--threads 1]`` (default model: the demo's, in demo_output/).
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import socket
import statistics
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(Path(__file__).resolve().parent))
TARGET_P95_S = 0.6
SECONDS = 5.0


def recordings(model_path: Path, n: int) -> list[tuple[str, bytes]]:
    """(sentence, 5.0 s WAV bytes) from the test split the model was trained beside: the ``n``
    utterances nearest 5 s."""
    import soundfile as sf

    from loralab.engine.model_card import model_config
    from loralab.speech.data.audio import load_audio

    config, _ = model_config(model_path) or (None, None)
    if config is None:
        raise SystemExit(f"{model_path}: no run config beside it; the benchmark needs the run's test split")
    manifest = Path(config["speech"]["manifest_dir"])
    rows = [json.loads(line) for line in (manifest / "test.jsonl").read_text().splitlines() if line]
    rows.sort(key=lambda r: abs(r["duration"] - SECONDS))
    if len(rows) < n:
        raise SystemExit(f"{manifest / 'test.jsonl'} holds {len(rows)} utterances; the benchmark needs {n}")
    out = []
    for row in rows[:n]:
        samples = load_audio(manifest / row["audio_path"])[: int(SECONDS * 16000)]
        samples = np.pad(samples, (0, int(SECONDS * 16000) - len(samples)))
        buffer = io.BytesIO()
        sf.write(buffer, samples, 16000, format="WAV")
        out.append((row["text"].capitalize(), buffer.getvalue()))
    return out


def post(port: int, text: str, audio: bytes) -> tuple[int, float, dict]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="text"\r\n\r\n{text}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="audio"; filename="take.wav"\r\n'
            "Content-Type: audio/wav\r\n\r\n"
        ).encode()
        + audio
        + f"\r\n--{boundary}--\r\n".encode()
    )
    start = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request("POST", "/v1/assess", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    response = conn.getresponse()
    data = json.loads(response.read())
    conn.close()
    return response.status, time.perf_counter() - start, data


def figures(latencies: list[float], wall: float, answers: list[dict]) -> dict:
    q = statistics.quantiles(latencies, n=20, method="inclusive") if len(latencies) > 1 else latencies * 19
    return {
        "requests": len(latencies),
        "p50_s": round(statistics.median(latencies), 3),
        "p95_s": round(q[18], 3),
        "max_s": round(max(latencies), 3),
        "throughput_per_s": round(len(latencies) / wall, 3),
        "wall_s": round(wall, 2),
        "mean_batch_size": round(statistics.mean(a["timing"]["batch_size"] for a in answers), 2),
        "mean_model_ms": round(statistics.mean(a["timing"]["model_ms"] for a in answers), 1),
        "answers_read": sum(not a["failures"] for a in answers),
    }


def run_phase(port: int, jobs: list[tuple[str, bytes]], clients: int) -> dict:
    n = len(jobs)
    start, cpu = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(lambda job: post(port, *job), jobs))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    bad = [r for r in results if r[0] != 200]
    assert not bad, f"{len(bad)} requests failed: {bad[0][2]}"
    # CPU seconds (server and clients, one process) per request: what a busy machine changes least
    extra = {"clients": clients, "cpu_s_per_request": round(cpu / n, 2)}
    return figures([r[1] for r in results], wall, [r[2] for r in results]) | extra


def find_model(given: str) -> Path:
    """``--model``: a run folder, final_model/ or checkpoint; or a demo output folder (``loralab
    demo``'s: the trained model under ``speech/runs*/<preset>/final_model``)."""
    from loralab.serve.limits import find_demo_model
    from loralab.speech.assessor import resolve_model_path

    path = Path(resolve_model_path(given))
    if (path / "adapter_config.json").is_file() or (path / "config.json").is_file():
        return path
    found = find_demo_model(path) or next(
        (f for f in sorted(path.glob("speech/runs*/*/final_model")) if (f / "adapter_config.json").is_file()),
        None,
    )
    if found is None:
        raise SystemExit(
            f"--model {given}: neither a model nor a demo output folder with a trained speech model"
        )
    return found


def _fp32_phase(model: Path, limits, warm: tuple[str, bytes], jobs: list) -> dict:
    """One by one through a server whose model is loaded in fp32 (the baseline of the precision)."""
    from loralab.serve.app import create_app
    from loralab.speech.assessor import Assessor

    assessor = Assessor.load(model, device="cpu", batch_size=8, precision="fp32")
    server, thread, port = serve(create_app(assessor, limits))
    try:
        post(port, *warm)
        return run_phase(port, jobs, 1)
    finally:
        server.should_exit = True
        thread.join(timeout=60)


def serve(app):
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return server, thread, sock.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--model", help="run folder, final_model/ or a demo output folder (default: demo_output/)"
    )
    parser.add_argument("--requests", type=int, default=12, help="requests per fast phase (default 12)")
    parser.add_argument("--baseline-requests", type=int, default=None,
                        help="requests of the baseline phase (default: --requests; 0 skips it)")  # fmt: skip
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads per worker (default: loralab serve's, the cores split among workers)")  # fmt: skip
    parser.add_argument("--workers", type=int, default=None, help="model workers (default: loralab serve's)")
    parser.add_argument("--fp32-requests", type=int, default=None,
                        help="requests one by one with the model in fp32, same run (default: --requests; 0 skips)")  # fmt: skip
    args = parser.parse_args(argv)
    baseline_n = args.requests if args.baseline_requests is None else args.baseline_requests
    fp32_n = args.requests if args.fp32_requests is None else args.fp32_requests

    import torch

    from loralab.serve.limits import default_workers

    workers, threads = default_workers("cpu", len(os.sched_getaffinity(0)), args.threads)
    workers = args.workers or workers
    torch.set_num_threads(threads or 1)

    from loralab.serve.app import create_app
    from loralab.serve.limits import ServeLimits, find_demo_model
    from loralab.speech.assessor import Assessor
    from machine import machine_info

    model = find_model(args.model) if args.model else find_demo_model()
    if model is None:
        print("serve benchmark skipped: no demo model in demo_output/ (run `make demo`) and no --model")
        return 0
    load_before = round(os.getloadavg()[0], 2)
    load_start = time.perf_counter()
    assessor = Assessor.load(model, device="cpu", batch_size=8)
    load_s = time.perf_counter() - load_start
    # Every request its own recording: two warm-ups, the baseline, fast one by one, concurrent.
    items = recordings(model, 2 + baseline_n + 2 * args.requests + fp32_n)
    warm, items = items[:2], items[2:]
    baseline_jobs, items = items[:baseline_n], items[baseline_n:]
    fp32_jobs, items = items[:fp32_n], items[fp32_n:]
    single_jobs, concurrent_jobs = items[: args.requests], items[args.requests :]
    limits = ServeLimits(queue_capacity=256, workers=workers, threads_per_worker=threads)
    fp32 = _fp32_phase(model, limits, warm[1], fp32_jobs) if fp32_n else None
    server, thread, port = serve(create_app(assessor, limits))
    try:
        baseline = same = None
        if baseline_n:  # first: the fast route changes the model's encoder (the baseline keeps transformers')
            assessor.fast = False
            first = post(port, *warm[0])[2]
            baseline = run_phase(port, baseline_jobs, 1)
        assessor.fast = True
        post(port, *warm[1])
        if baseline_n:  # the same recording both ways: the same answers and scores
            again = post(port, *warm[0])[2]
            same = again["raw"] == first["raw"] and again["scores"] == first["scores"]
        single = run_phase(port, single_jobs, 1)
        concurrent = run_phase(port, concurrent_jobs, args.clients)
    finally:
        server.should_exit = True
        thread.join(timeout=60)
    ratio = concurrent["throughput_per_s"] / single["throughput_per_s"]
    speedup = (
        {
            "p50": round(baseline["p50_s"] / single["p50_s"], 2),
            "p95": round(baseline["p95_s"] / single["p95_s"], 2),
            "cpu_s_per_request": round(baseline["cpu_s_per_request"] / single["cpu_s_per_request"], 2),
        }
        if baseline
        else None
    )
    result = {
        "name": "serve",
        "model": str(model),
        "model_load_s": round(load_s, 1),
        "recording_s": SECONDS,
        "cpu_count": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": threads,
        "workers": workers,
        "machine": machine_info(),
        "fp32_one_by_one": fp32,
        "speedup_bf16_vs_fp32_p95": round(fp32["p95_s"] / single["p95_s"], 2) if fp32 else None,
        "load_average_1min_before": load_before,
        "load_average_1min": round(os.getloadavg()[0], 2),
        "baseline_one_by_one": baseline,
        "one_by_one": single,
        "concurrent": concurrent,
        "speedup_vs_baseline": speedup,
        "same_answers_as_baseline": same,
        "ratio": round(ratio, 2),
        "target_p95_s": TARGET_P95_S,
        "meets_target": single["p95_s"] <= TARGET_P95_S,
        "summary": f"one by one p50 {single['p50_s']:.2f} s p95 {single['p95_s']:.2f} s "
        f"({single['cpu_s_per_request']:.2f} CPU s/request, {single['throughput_per_s']:.2f}/s); "
        f"{args.clients} clients p95 {concurrent['p95_s']:.2f} s, {concurrent['throughput_per_s']:.2f}/s"
        + (
            f"; baseline p50 {baseline['p50_s']:.2f} s p95 {baseline['p95_s']:.2f} s "
            f"({baseline['cpu_s_per_request']:.2f} CPU s/request): {speedup['p95']:.2f}x at p95"
            if baseline
            else ""
        )
        + " (5 s recordings, CPU)",
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "serve.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"serve: {result['summary']}; concurrent/one-by-one {ratio:.2f}x; target p95 <= {TARGET_P95_S:g} s "
          f"{'met' if result['meets_target'] else 'NOT met'} (load average {result['load_average_1min_before']} "
          f"before, {result['load_average_1min']} after; {result['torch_threads']} torch thread(s), "
          f"{result['cores_usable']} cores)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
