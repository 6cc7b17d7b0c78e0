"""Round 3 on the service: a decompression bomb is refused from its header before any decoding,
decoding is bounded even when the header lies, deeply nested JSON is a JSON 400, and an
unexpected failure is JSON too (never text/plain). No model: a stub stands behind the app."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
import soundfile as sf

from loralab.serve.inputs import ApiError, decode_recording
from loralab.serve.limits import ServeLimits

from .conftest import running_server, wav_bytes

LIMITS = ServeLimits(max_duration_s=6.0)


def _flac(seconds: float, channels: int = 8, rate: int = 8000, fmt: str = "FLAC") -> bytes:
    """Silence: a few kB of FLAC that decodes to seconds x channels x rate float32 samples."""
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros((int(seconds * rate), channels), np.int16), rate, format=fmt)
    return buffer.getvalue()


class _StubAssessor:
    name, description, batch_size = "stub", "no model", 1

    def assess_samples(self, requests):
        raise RuntimeError("the model broke")


@pytest.fixture(scope="module")
def stub_server():
    from loralab.serve.app import create_app

    with running_server(create_app(_StubAssessor(), LIMITS)) as client:
        yield client


def test_a_bomb_is_refused_from_its_header_without_decoding(monkeypatch):
    bomb = _flac(120.0)
    assert len(bomb) < 100_000  # small upload, 30 MB once decoded
    decoded = []
    monkeypatch.setattr(sf, "read", lambda *a, **k: decoded.append(1))
    with pytest.raises(ApiError) as info:
        decode_recording(bomb, "bomb.flac", LIMITS)
    assert info.value.status == 413 and "120.0 s" in info.value.message and "6 s" in info.value.message
    assert decoded == []


@pytest.mark.parametrize(
    "audio, code, words",
    [
        (lambda: _flac(1.0, channels=12, fmt="WAV"), "too_many_channels", ["12 channels", "limit is 8"]),
        (lambda: wav_bytes(0.5, rate=192000), "sample_rate_too_high", ["192000 Hz", "96000 Hz"]),
    ],
)
def test_channels_and_rate_beyond_the_limits_are_refused_naming_them(audio, code, words):
    with pytest.raises(ApiError) as info:
        decode_recording(audio(), "take", LIMITS)
    assert info.value.status == 422 and info.value.code == code
    assert all(w in info.value.message for w in words)


def test_decoding_is_bounded_when_the_header_understates_the_length(monkeypatch):
    real_info, real_read = sf.info, sf.read
    lying = _flac(60.0, channels=2)

    def understated(file):
        info = real_info(file)
        info.frames = 8000  # "1 s"
        return info

    asked = []

    def read(*args, **kwargs):
        asked.append(kwargs.get("frames", -1))
        return real_read(*args, **kwargs)

    monkeypatch.setattr(sf, "info", understated)
    monkeypatch.setattr(sf, "read", read)
    with pytest.raises(ApiError) as info:
        decode_recording(lying, "lying.flac", LIMITS)
    assert info.value.code == "audio_too_long"
    assert asked == [6 * 8000 + 1]  # never the whole 60 s


def test_deeply_nested_json_is_a_json_400(stub_server):
    body = b'{"audio_base64": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    status, headers, data = stub_server.request(
        "POST", "/v1/assess", body, {"Content-Type": "application/json"}
    )
    assert status == 400 and headers["content-type"] == "application/json"
    assert data["error"]["code"] == "bad_json" and "too deeply" in data["error"]["message"]


def test_an_unexpected_failure_is_json_not_text(stub_server):
    audio = base64.b64encode(wav_bytes(0.5)).decode()
    status, headers, data = stub_server.post_json("/v1/assess", {"audio_base64": audio, "text": "hello"})
    assert status == 500 and headers["content-type"] == "application/json"
    assert data["error"]["code"] == "internal_error" and "RuntimeError" in data["error"]["message"]
    assert json.loads(json.dumps(data))  # a JSON body, parsed by the client


def test_a_recording_cut_short_gets_a_note_and_one_far_too_short_a_422(server):
    sentence = "We call it a bear in the zoo"  # 17 phones: 0.8 s is 21 phones/s, 0.25 s is 68
    status, _, data = server.assess(wav_bytes(0.8), sentence)
    assert status == 200, data
    assert any("short for its sentence" in note and "17 phones" in note for note in data["notes"])
    status, _, data = server.assess(wav_bytes(0.25), sentence)
    assert status == 422 and data["error"]["code"] == "text_too_long_for_audio"
    assert "17 phones" in data["error"]["message"] and "0.25 s" in data["error"]["message"]


def test_a_body_that_never_arrives_is_a_json_408_within_the_read_timeout():
    import socket
    import time

    from loralab.serve.app import create_app

    limits = ServeLimits(read_timeout_s=0.5)
    with running_server(create_app(_StubAssessor(), limits)) as client:
        started = time.monotonic()
        with socket.create_connection((client.host, client.port), timeout=30) as sock:
            sock.sendall(
                b"POST /v1/assess HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b'Content-Length: 1000\r\n\r\n{"audio_base64": '
            )  # and nothing more
            reply = sock.recv(65536).decode()
            while "\r\n\r\n" in reply and len(reply.split("\r\n\r\n", 1)[1]) < int(
                reply.lower().split("content-length: ", 1)[1].split("\r\n", 1)[0]
            ):  # the body may come in a segment of its own
                reply += sock.recv(65536).decode()
        assert time.monotonic() - started < 20
    assert reply.startswith("HTTP/1.1 408") and "application/json" in reply and "request_timeout" in reply


async def _asgi_post(app, content_type: str, chunks: list[bytes]) -> tuple[int, dict, int]:
    """POST ``chunks`` to ``app`` as a body of unknown length (chunked); (status, JSON answer,
    chunks the app asked for)."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/v1/assess", "raw_path": b"/v1/assess", "root_path": "",
             "query_string": b"", "headers": [(b"content-type", content_type.encode())],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}  # fmt: skip
    pending, sent = list(chunks), []

    async def receive():
        body = pending.pop(0)
        return {"type": "http.request", "body": body, "more_body": bool(pending)}

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], json.loads(body), len(chunks) - len(pending)


def test_a_body_over_the_limit_without_a_length_is_refused_as_it_streams():
    """No Content-Length: the bytes are counted as they arrive, and a body over the limit is a
    JSON 413 before the rest is read, multipart or JSON alike (not a parse error after it all)."""
    import asyncio

    from loralab.serve.app import create_app

    app = create_app(_StubAssessor(), ServeLimits(max_upload_bytes=1000))  # a request: about 1.05 MB
    part = b'--b\r\nContent-Disposition: form-data; name="audio"; filename="a.wav"\r\nContent-Type: audio/wav\r\n\r\n'
    bodies = {"application/json": b'{"audio_base64": "', "multipart/form-data; boundary=b": part}
    for kind, head in bodies.items():
        status, data, read = asyncio.run(_asgi_post(app, kind, [head] + [b"A" * 65536] * 64))  # 4 MB
        assert status == 413, (kind, data)
        assert data["error"]["code"] == "request_too_large" and "1.0 MB" in data["error"]["message"]
        assert read <= 18  # 1.05 MB in 64 kB chunks: the rest was never read
