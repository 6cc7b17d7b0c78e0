"""The queue under load, on loopback with the tiny model: bounded in count (32 + 24 requests)
and in time (every request has a client timeout); no timing is asserted."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from .conftest import running_server, wav_bytes

SENTENCES = ["We call it bear", "Good morning", "Thank you very much", "The weather is nice", "I like books"]


class GatedAssessor:
    """The tiny assessor, held at a gate before each batch (to fill the queue deterministically)."""

    def __init__(self, inner):
        self.inner, self.gate = inner, threading.Event()
        self.name, self.description, self.batch_size = inner.name, inner.description, inner.batch_size
        self.batches: list[int] = []

    def assess_samples(self, requests):
        self.gate.wait(timeout=120)
        self.batches.append(len(requests))
        return self.inner.assess_samples(requests)


def _app(assessor, **limits):
    from loralab.serve.app import create_app
    from loralab.serve.limits import ServeLimits

    return create_app(assessor, ServeLimits(**limits))


def _wait_for(client, waiting: int) -> None:
    deadline = time.monotonic() + 60
    while client.get("/health")[2]["queue"]["waiting"] != waiting:
        assert time.monotonic() < deadline, "the queue never reached the expected length"
        time.sleep(0.02)


def test_full_queue_is_503_with_retry_after_and_the_rest_are_batched(tiny_assessor):
    gated = GatedAssessor(tiny_assessor)
    gated.batch_size = 4
    with (
        running_server(_app(gated, queue_capacity=3, batch_wait_s=0.0)) as client,
        ThreadPoolExecutor(4) as pool,
    ):
        first = pool.submit(client.assess, wav_bytes(0.5), SENTENCES[0])
        deadline = time.monotonic() + 60
        while not client.get("/health")[2]["queue"]["model_busy"]:  # the first batch is at the gate
            assert time.monotonic() < deadline
            time.sleep(0.02)
        waiting = [pool.submit(client.assess, wav_bytes(0.5), s) for s in SENTENCES[1:4]]
        _wait_for(client, 3)
        status, headers, data = client.assess(wav_bytes(0.5), SENTENCES[4])
        assert status == 503 and data["error"]["code"] == "queue_full"
        assert int(headers["retry-after"]) >= 1 and "queue is full" in data["error"]["message"]
        gated.gate.set()
        results = [f.result(timeout=120) for f in [first, *waiting]]
    assert [r[0] for r in results] == [200] * 4
    assert [r[2]["text"] for r in results] == SENTENCES[:4]
    assert gated.batches == [1, 3]  # the three that waited went to the model together
    assert [r[2]["timing"]["batch_size"] for r in results] == [1, 3, 3, 3]


def test_32_concurrent_requests_all_answered_or_told_to_retry(tiny_assessor):
    with running_server(_app(tiny_assessor, queue_capacity=16)) as client, ThreadPoolExecutor(32) as pool:
        jobs = [(SENTENCES[i % 5], wav_bytes(0.4 + 0.05 * (i % 7), freq=150 + 10 * i)) for i in range(32)]
        futures = [pool.submit(client.assess, audio, text) for text, audio in jobs]
        answers = [f.result(timeout=300) for f in futures]
        health = client.get("/health")[2]
    assert len(answers) == 32
    ok = [(job, a) for job, a in zip(jobs, answers) if a[0] == 200]
    retry = [a for a in answers if a[0] == 503]
    assert len(ok) + len(retry) == 32 and ok
    for (text, _), (_, _, data) in ok:  # each answer is for its own request
        assert data["text"] == text
        assert " ".join(w["word"] for w in data["words"]) == text.upper()
    for _, headers, data in retry:
        assert int(headers["retry-after"]) >= 1 and data["error"]["code"] == "queue_full"
    assert health["served"]["assessed"] == len(ok) and health["served"]["refused"] == len(retry)
    assert health["queue"]["waiting"] == 0


BAD = [
    ({"audio": b"GIF89a not a sound at all" * 10}, 422, "not_audio"),
    ({"text": ""}, 422, "empty_text"),
    ({"text": "We call it zorblax"}, 422, "unknown_words"),
    ({"kind": "text/plain"}, 415, "not_audio_type"),
    ({"audio": wav_bytes(20.0)}, 413, "audio_too_long"),
    ({"audio": b""}, 422, "empty_audio"),
]


def test_bad_uploads_interleaved_with_good_ones(tiny_assessor):
    requests = []
    for i in range(24):
        good = {"audio": wav_bytes(0.5, freq=200 + 5 * i), "text": SENTENCES[i % 5]}
        requests.append(
            (good, 200, None) if i % 2 == 0 else ({**good, **BAD[(i // 2) % 6][0]}, *BAD[(i // 2) % 6][1:])
        )
    with running_server(_app(tiny_assessor, max_duration_s=10.0)) as client, ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda r: client.assess(**r[0]), requests, timeout=300))
        health = client.get("/health")
    for (sent, status, code), (got, _, data) in zip(requests, answers):
        assert got == status, (code, data)
        if status == 200:
            assert data["text"] == sent["text"]
        else:
            assert data["error"]["code"] == code and data["error"]["message"]
    assert health[0] == 200 and health[2]["status"] == "ok" and health[2]["served"]["assessed"] == 12


def test_a_batch_bigger_than_the_queue_is_413_not_503(tiny_assessor):
    files = [("audio", f"{i}.wav", wav_bytes(0.3), "audio/wav") for i in range(3)]
    with running_server(_app(tiny_assessor, queue_capacity=2)) as client:
        status, headers, data = client.post_form("/v1/assess/batch", [("text", "Good morning")] * 3, files)
        assert status == 413 and data["error"]["code"] == "too_many_items" and "retry-after" not in headers
        assert "at most 2" in data["error"]["message"]
