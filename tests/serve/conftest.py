"""Fixtures of the service tests: the tiny random model behind a real server on a free loopback
port (uvicorn in a thread), a stdlib HTTP client and synthetic recordings."""

from __future__ import annotations

import base64
import http.client
import io
import json
import socket
import threading
import time
import uuid
from contextlib import contextmanager

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("fastapi", reason="the service needs fastapi (pip install -e '.[dev]')")


def wav_bytes(seconds: float = 1.0, freq: float = 220.0, rate: int = 16000, fmt: str = "WAV") -> bytes:
    """A synthetic recording: a vowel-like tone with a few harmonics, as encoded bytes."""
    t = np.arange(int(seconds * rate)) / rate
    signal = sum(0.2 / k * np.sin(2 * np.pi * freq * k * t) for k in (1, 2, 3))
    buffer = io.BytesIO()
    sf.write(buffer, signal.astype(np.float32), rate, format=fmt)
    return buffer.getvalue()


class Client:
    """A minimal HTTP client (stdlib) for one server; every call opens its own connection."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        try:
            payload = json.loads(data) if data else None
        except ValueError:
            payload = data.decode("utf-8", "replace")
        return response.status, {k.lower(): v for k, v in response.getheaders()}, payload

    def get(self, path: str):
        return self.request("GET", path)

    def post_json(self, path: str, payload) -> tuple:
        body = json.dumps(payload).encode()
        return self.request("POST", path, body, {"Content-Type": "application/json"})

    def post_form(self, path: str, fields: list[tuple[str, str]], files: list[tuple[str, str, bytes, str]]):
        """``files``: (field, filename, bytes, content type)."""
        boundary = uuid.uuid4().hex
        parts = []
        for name, value in fields:
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
            )
        for name, filename, data, kind in files:
            head = (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                    f"Content-Type: {kind}\r\n\r\n")  # fmt: skip
            parts.append(head.encode() + data + b"\r\n")
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        return self.request("POST", path, body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})

    def assess(self, audio: bytes, text: str, filename: str = "take.wav", kind: str = "audio/wav", **fields):
        extra = [(k, str(v)) for k, v in fields.items()]
        return self.post_form("/v1/assess", [("text", text), *extra], [("audio", filename, audio, kind)])

    def assess_json(self, audio: bytes, text: str, **fields):
        return self.post_json(
            "/v1/assess", {"audio_base64": base64.b64encode(audio).decode(), "text": text, **fields}
        )


@contextmanager
def running_server(app):
    """``app`` served by uvicorn on a free port of 127.0.0.1 in a thread; yields a :class:`Client`."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield Client("127.0.0.1", port)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@pytest.fixture(scope="session")
def tiny_assessor(tiny_model_dir):
    """The tiny random Phi-4-multimodal, loaded once; answers cut at 8 new tokens (it never stops)."""
    from loralab.speech.assessor import Assessor

    return Assessor.load(tiny_model_dir, device="cpu", batch_size=8, max_new_tokens=8)


@pytest.fixture(scope="module")
def server(tiny_assessor):
    """A server with default limits except a small upload limit (to test it cheaply)."""
    from loralab.serve.app import create_app
    from loralab.serve.limits import ServeLimits

    limits = ServeLimits(max_upload_bytes=400_000, max_duration_s=6.0, max_text_chars=200, queue_capacity=64)
    with running_server(create_app(tiny_assessor, limits)) as client:
        yield client
