"""Serve a trained pronunciation-assessment model over HTTP, with a web page.

The model loads once. Open http://HOST:PORT/ in a browser: record a sentence (or upload a
file), see the four scores, what was heard and which sounds went wrong. The API:
POST /v1/assess (multipart 'audio' + 'text', or JSON with 'audio_base64'), POST
/v1/assess/batch, GET /health; its documentation at /docs (OpenAPI: /openapi.json).
Concurrent requests wait in a bounded queue and are batched onto the model; a full queue
answers 503 with Retry-After.

Without --model it serves the demo's trained speech model (demo_output/, from `make demo`).

Examples:
  loralab serve                                   # the demo's model on http://127.0.0.1:8000/
  loralab serve --model output/paper_r64 --port 9000
  curl -F audio=@me.wav -F text="We call it bear" http://127.0.0.1:8000/v1/assess
"""

from __future__ import annotations

import argparse

HELP = "serve a trained model over HTTP with a web page (record a sentence, see what went wrong)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        help="a run folder, its final_model/, a checkpoint-epoch-N/ or a base model folder "
        "(default: the demo's trained speech model in demo_output/)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--base-model", help="base model, when the adapter's card points somewhere else")
    parser.add_argument("--device", help="torch device (default: cuda when present)")
    parser.add_argument("--batch-size", type=int, default=8, help="recordings per model batch (default 8)")
    parser.add_argument(
        "--queue-size", type=int, default=64, help="recordings that may wait; beyond: 503 (default 64)"
    )
    parser.add_argument("--max-upload-mb", type=float, default=10.0, help="largest recording (default 10)")
    parser.add_argument(
        "--max-duration", type=float, default=30.0, help="longest recording in seconds (default 30)"
    )
    parser.add_argument(
        "--max-text-chars", type=int, default=500, help="longest sentence in characters (default 500)"
    )
    parser.add_argument(
        "--max-new-tokens", type=int, help="generation budget (default: from the sentence length)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        help="recordings assessed at once, side by side on the one model (default: on a CPU one per "
        "core, at most 4; on a GPU 1)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="torch CPU threads of each worker (default: the cores divided among the workers)",
    )


def _limits(args: argparse.Namespace):
    import os

    from loralab.errors import LoralabError
    from loralab.serve.limits import MB, ServeLimits, default_workers

    checks = {
        "--port": (args.port, 0 <= args.port <= 65535),
        "--batch-size": (args.batch_size, args.batch_size >= 1),
        "--queue-size": (args.queue_size, args.queue_size >= 1),
        "--max-upload-mb": (args.max_upload_mb, args.max_upload_mb > 0),
        "--max-duration": (args.max_duration, args.max_duration > 0),
        "--max-text-chars": (args.max_text_chars, args.max_text_chars >= 1),
        "--threads": (args.threads, args.threads is None or args.threads >= 1),
        "--workers": (args.workers, args.workers is None or args.workers >= 1),
    }
    for flag, (value, ok) in checks.items():
        if not ok:
            raise LoralabError(f"{flag} {value} is out of range")
    device_type = (
        "cuda" if (args.device or "").startswith("cuda") or (args.device is None and _has_cuda()) else "cpu"
    )
    workers, threads = default_workers(device_type, os.cpu_count() or 1, args.threads)
    return ServeLimits(
        workers=args.workers or workers,
        threads_per_worker=threads,
        max_upload_bytes=int(args.max_upload_mb * MB),
        max_duration_s=args.max_duration,
        max_text_chars=args.max_text_chars,
        queue_capacity=args.queue_size,
    )


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _model_path(model: str | None) -> str:
    from pathlib import Path

    from loralab.errors import LoralabError
    from loralab.serve.limits import find_demo_model

    if model:
        if not Path(model).expanduser().exists() and "/" not in model:
            raise LoralabError(f"--model {model}: no such folder")
        return model
    found = find_demo_model()
    if found is None:
        raise LoralabError(
            "no --model given and no demo model in demo_output/speech/runs/: train one with "
            "`make demo` (or `loralab demo`), or pass --model RUN_OR_MODEL_DIR"
        )
    return str(found)


def run(args: argparse.Namespace) -> int:
    limits = _limits(args)
    model = _model_path(args.model)

    import uvicorn

    from loralab.serve.app import create_app
    from loralab.speech.assessor import Assessor

    print(f"loading {model} ...", flush=True)
    assessor = Assessor.load(model, device=args.device, base_model=args.base_model,
                             batch_size=args.batch_size, max_new_tokens=args.max_new_tokens)  # fmt: skip
    print(f"model: {assessor.description}", flush=True)
    threads = f", {limits.threads_per_worker} torch thread(s) each" if limits.threads_per_worker else ""
    print(f"{limits.workers} worker(s){threads}", flush=True)
    print(f"serving on http://{args.host}:{args.port}/  (API docs: /docs; Ctrl-C stops)", flush=True)
    # timeout_keep_alive: an idle kept-alive connection is closed after 5 s (uvicorn's default, said here)
    uvicorn.run(
        create_app(assessor, limits), host=args.host, port=args.port, log_level="info", timeout_keep_alive=5
    )
    return 0
