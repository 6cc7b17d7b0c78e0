"""A client that closes its connection while its recording waits for the model: the recording
leaves the queue unassessed (no model time for an answer nobody reads), and the server goes on
serving. No model: a stub held at a gate stands behind the app."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

from .conftest import running_server, wav_bytes


class _GatedStub:
    """Answers every recording with an empty assessment, each batch after ``gate`` opens."""

    name, description, batch_size = "stub", "no model", 1

    def __init__(self):
        self.gate, self.texts = threading.Event(), []

    def assess_samples(self, requests):
        self.gate.wait(timeout=60)
        self.texts.extend(text for text, _, _ in requests)
        return [SimpleNamespace(text=text, scores={"total": float("nan")}, word_transcript=None,
                                phoneme_transcript=None, words=[], notes=[], failures={}, raw={})
                for text, _, _ in requests]  # fmt: skip


def _health(client):
    return client.get("/health")[2]


def _until(condition, what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.02)


def test_a_client_that_leaves_gets_no_model_time():
    from loralab.serve.app import create_app

    stub = _GatedStub()
    body = json.dumps({"audio_base64": base64.b64encode(wav_bytes(0.5)).decode(), "text": "good morning"})
    with running_server(create_app(stub)) as client, ThreadPoolExecutor(1) as pool:
        first = pool.submit(client.assess_json, wav_bytes(0.5), "hello")
        _until(lambda: _health(client)["queue"]["model_busy"], "the first request reached the model")
        with socket.create_connection((client.host, client.port), timeout=30) as sock:
            sock.sendall(f"POST /v1/assess HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         f"Content-Length: {len(body)}\r\n\r\n{body}".encode())  # fmt: skip
            _until(lambda: _health(client)["queue"]["waiting"] == 1, "the second request was queued")
        # The second client is gone; its recording is still in the queue. The server hears of the
        # close at once on loopback; the pause only keeps the worker from racing that news.
        time.sleep(0.5)
        stub.gate.set()
        status, _, answer = first.result(timeout=60)
        _until(lambda: _health(client)["queue"]["waiting"] == 0, "the queue emptied")
        served = _health(client)["served"]
        again = client.assess_json(wav_bytes(0.5), "thank you")
    assert status == 200 and answer["text"] == "hello"
    assert answer["scores"] == {"total": None}  # NaN is null in JSON (loralab.json_numbers)
    assert served["abandoned"] == 1 and served["assessed"] == 1
    assert again[0] == 200 and stub.texts == ["hello", "thank you"]  # never "good morning"
