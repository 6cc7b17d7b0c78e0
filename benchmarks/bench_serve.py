"""`loralab serve` latency and throughput on the demo's trained speech model, on CPU.

The server runs in process on a free loopback port (uvicorn in a thread, the real app, queue
and model); clients post ~5 s recordings of the model's own test split (the synthetic
corpus; padded or cut to exactly 5.0 s) with their sentences over HTTP. In the same run:

* one by one: each request sent when the previous one was answered (what a learner does);
* concurrent: ``--clients`` clients at once, ``--requests`` in all (batched onto the model).

Figures: p50/p95 latency per request (client side) and throughput (recordings/s); ratio =
concurrent throughput / one-by-one throughput. Target: p95 <= 2 s one by one for a 5 s
recording on 2 cores. Writes ``benchmarks/results/serve.json``.

Usage: ``python benchmarks/bench_serve.py [--model RUN_OR_MODEL_DIR] [--requests 16] [--clients 8]``
(default model: the demo's, in demo_output/).
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
TARGET_P95_S = 2.0
SECONDS = 5.0


def recordings(model_path: Path, n: int) -> list[tuple[str, bytes]]:
    """(sentence, 5.0 s WAV bytes) from the test split the model was trained beside."""
    import soundfile as sf

    from loralab.speech.data.audio import load_audio

    config = json.loads((model_path.parent / "training_config.json").read_text())["config"]
    manifest = Path(config["speech"]["manifest_dir"])
    rows = [json.loads(line) for line in (manifest / "test.jsonl").read_text().splitlines() if line]
    rows.sort(key=lambda r: abs(r["duration"] - SECONDS))
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


def run_phase(port: int, items: list[tuple[str, bytes]], n: int, clients: int) -> dict:
    jobs = [items[i % len(items)] for i in range(n)]
    start, cpu = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(lambda job: post(port, *job), jobs))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    bad = [r for r in results if r[0] != 200]
    assert not bad, f"{len(bad)} requests failed: {bad[0][2]}"
    # CPU seconds (server and clients, one process) per request: what a busy machine changes least
    extra = {"clients": clients, "cpu_s_per_request": round(cpu / n, 2)}
    return figures([r[1] for r in results], wall, [r[2] for r in results]) | extra


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
    parser.add_argument("--model", help="run folder or final_model/ (default: the demo's)")
    parser.add_argument("--requests", type=int, default=12, help="requests per phase (default 12)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: see README)")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)

    from loralab.serve.app import create_app
    from loralab.serve.limits import ServeLimits, find_demo_model
    from loralab.speech.assessor import Assessor, resolve_model_path

    model = Path(resolve_model_path(args.model)) if args.model else find_demo_model()
    if model is None:
        print("serve benchmark skipped: no demo model in demo_output/ (run `make demo`) and no --model")
        return 0
    load_before = round(os.getloadavg()[0], 2)
    load_start = time.perf_counter()
    assessor = Assessor.load(model, device="cpu", batch_size=8)
    load_s = time.perf_counter() - load_start
    items = recordings(model, 8)
    server, thread, port = serve(create_app(assessor, ServeLimits(queue_capacity=256)))
    try:
        post(port, *items[0])  # warm-up
        single = run_phase(port, items, args.requests, 1)
        concurrent = run_phase(port, items, args.requests, args.clients)
    finally:
        server.should_exit = True
        thread.join(timeout=60)
    ratio = concurrent["throughput_per_s"] / single["throughput_per_s"]
    result = {
        "name": "serve",
        "model": str(model),
        "model_load_s": round(load_s, 1),
        "recording_s": SECONDS,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1min_before": load_before,
        "load_average_1min": round(os.getloadavg()[0], 2),
        "one_by_one": single,
        "concurrent": concurrent,
        "ratio": round(ratio, 2),
        "target_p95_s": TARGET_P95_S,
        "meets_target": single["p95_s"] <= TARGET_P95_S,
        "summary": f"one by one p50 {single['p50_s']:.2f} s p95 {single['p95_s']:.2f} s "
        f"({single['throughput_per_s']:.2f}/s); {args.clients} clients p95 {concurrent['p95_s']:.2f} s, "
        f"{concurrent['throughput_per_s']:.2f}/s (5 s recordings, CPU)",
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "serve.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"serve: {result['summary']}; ratio {ratio:.2f}x; target p95 <= {TARGET_P95_S:g} s "
          f"{'met' if result['meets_target'] else 'NOT met'} (load average {result['load_average_1min']})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
