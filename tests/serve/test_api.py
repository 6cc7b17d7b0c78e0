"""The HTTP API on the tiny random model: answers' shape, the page and its offline assets, and
a 4xx JSON error naming the problem for every kind of bad input (the server keeps serving)."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
import soundfile as sf

from .conftest import wav_bytes


def test_health_and_openapi(server):
    status, _, health = server.get("/health")
    assert status == 200 and health["status"] == "ok"
    assert health["queue"]["capacity"] == 64 and health["queue"]["waiting"] == 0
    assert health["model"] == "model" and health["limits"]["max_duration_s"] == 6.0
    status, _, spec = server.get("/openapi.json")
    assert status == 200
    body = spec["paths"]["/v1/assess"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/json"} <= set(body)
    assert "/v1/assess/batch" in spec["paths"] and "/health" in spec["paths"]
    assert set(spec["paths"]["/v1/assess/batch"]["post"]["requestBody"]["content"]) == {
        "multipart/form-data", "application/json"
    }  # fmt: skip
    assert spec["components"]["schemas"]["AssessJson"]["required"] == ["audio_base64", "text"]
    assert "/redoc" not in spec["paths"] and server.get("/redoc")[0] == 404  # ReDoc needs a CDN


def test_docs_are_served_by_the_package_without_cdn(server):
    status, _, html = server.get("/docs")
    assert status == 200
    assets = re.findall(r"(?:url: |_url=|src=|href=)['\"]([^'\"]+)['\"]", html)
    assert "/docs/assets/swagger-ui-bundle.js" in assets and "/docs/openapi-3.0.json" in assets
    assert not re.findall(r"https?://", html)
    for asset in ("/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css"):
        status, headers, _ = server.get(asset)
        assert status == 200 and int(headers["content-length"]) > 100_000
    status, _, viewer = server.get("/docs/openapi-3.0.json")  # Swagger UI 4 reads OpenAPI 3.0 only
    assert status == 200 and viewer["openapi"].startswith("3.0.")
    assert set(viewer["paths"]) == set(server.get("/openapi.json")[2]["paths"])
    filename = viewer["components"]["schemas"]["AssessJson"]["properties"]["filename"]
    assert filename["type"] == "string" and filename["nullable"] is True and "anyOf" not in filename
    assert '"type": "null"' not in json.dumps(viewer) and "contentMediaType" not in json.dumps(viewer)


def test_page_is_served_by_the_package_without_cdn(server):
    status, _, html = server.get("/")
    assert status == 200 and 'id="record"' in html and 'id="file"' in html
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert "/static/app.js" in assets and "/static/style.css" in assets
    assert not [a for a in assets if a.startswith(("http:", "https:", "//"))]
    for asset in ("/static/app.js", "/static/style.css"):
        status, _, text = server.get(asset)
        assert status == 200 and "https://" not in text and "http://" not in text
    assert "MediaRecorder" in server.get("/static/app.js")[2]


def _check_assessment(data, words):
    assert [w["word"] for w in data["words"]] == words
    assert data["model"] == "model" and set(data["raw"]) == {"apa", "mdd"}
    assert set(data["scores"]) | {k.split(".")[1] for k in data["failures"] if k.startswith("apa.")} == {
        "accuracy", "fluency", "prosodic", "total"
    }  # fmt: skip
    for value in data["scores"].values():
        assert 0 <= value <= 10
    assert {"queued_ms", "model_ms", "total_ms", "batch_size"} <= set(data["timing"])
    assert data["timing"]["batch_size"] >= 1 and data["timing"]["total_ms"] >= data["timing"]["model_ms"]
    for w in data["words"]:
        assert w["ok"] == (not w["errors"] if data["diagnosis_available"] else None)
        assert all(e["type"] in ("substitution", "deletion", "insertion") for e in w["errors"])


def test_assess_multipart_and_json(server):
    status, _, data = server.assess(wav_bytes(1.0), "We call it bear")
    assert status == 200, data
    _check_assessment(data, ["WE", "CALL", "IT", "BEAR"])
    assert data["words"][1]["expected"] == ["K", "AO", "L"]
    assert data["audio"] == {"name": "take.wav", "duration_s": 1.0, "sample_rate": 16000}
    status, _, data = server.assess_json(wav_bytes(0.8, rate=22050, fmt="FLAC"), "Good morning")
    assert status == 200, data
    _check_assessment(data, ["GOOD", "MORNING"])
    assert data["audio"]["sample_rate"] == 22050


def test_batch_keeps_the_order(server):
    texts = ["We call it bear", "Good morning", "Thank you"]
    files = [("audio", f"t{i}.wav", wav_bytes(0.5 + 0.3 * i), "audio/wav") for i in range(3)]
    status, _, data = server.post_form("/v1/assess/batch", [("text", t) for t in texts], files)
    assert status == 200, data
    assert [r["text"] for r in data["results"]] == texts
    assert [r["audio"]["name"] for r in data["results"]] == ["t0.wav", "t1.wav", "t2.wav"]
    import base64

    items = [{"audio_base64": base64.b64encode(wav_bytes(0.6)).decode(), "text": t} for t in texts[:2]]
    status, _, data = server.post_json("/v1/assess/batch", {"items": items})
    assert status == 200 and [r["text"] for r in data["results"]] == texts[:2]


def test_unknown_words_refused_unless_allowed(server):
    status, _, data = server.assess(wav_bytes(), "We call it blorf")
    assert status == 422 and data["error"]["code"] == "unknown_words"
    assert "BLORF" in data["error"]["message"] and "allow_guessed" in data["error"]["message"]
    status, _, data = server.assess(wav_bytes(), "We call it blorf", allow_guessed="true")
    assert status == 200 and data["words"][3]["lexicon"] == "guessed"
    assert any("BLORF" in n for n in data["notes"])


def _silence() -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(16000, dtype=np.float32), 16000, format="WAV")
    return buffer.getvalue()


BAD_UPLOADS = [
    # (why, kwargs for Client.assess, status, code, words in the message)
    ("not audio", {"audio": b"hello, I am a text file" * 20}, 422, "not_audio", ["take.wav", "not audio"]),
    ("image type", {"kind": "image/png"}, 415, "not_audio_type", ["image/png"]),
    ("too large", {"audio": wav_bytes(14.0)}, 413, "audio_too_large", ["MB", "limit"]),
    ("too long", {"audio": wav_bytes(8.0, rate=8000)}, 413, "audio_too_long", ["8.0 s", "6 s"]),
    ("silent", {"audio": _silence()}, 422, "bad_audio", ["silent"]),
    ("empty audio", {"audio": b""}, 422, "empty_audio", ["empty"]),
    ("empty text", {"text": "   "}, 422, "empty_text", ["text", "empty"]),
    ("long text", {"text": "word " * 60 + "x"}, 422, "text_too_long", ["301 characters", "200"]),
    ("no words", {"text": "?! ... 123"}, 422, "no_words", ["no words"]),
]


@pytest.mark.parametrize("why,kwargs,status,code,words", BAD_UPLOADS, ids=[b[0] for b in BAD_UPLOADS])
def test_bad_uploads_are_4xx_naming_the_problem(server, why, kwargs, status, code, words):
    args = {"audio": wav_bytes(0.5), "text": "We call it bear", **kwargs}
    got, _, data = server.assess(**args)
    assert got == status, data
    assert data["error"]["code"] == code and data["error"]["status"] == status
    for word in words:
        assert word in data["error"]["message"]
    assert server.get("/health")[0] == 200


def test_bad_requests_are_4xx_json(server):
    status, _, data = server.request("POST", "/v1/assess", b"audio", {"Content-Type": "text/plain"})
    assert status == 415 and "multipart/form-data" in data["error"]["message"]
    status, _, data = server.request("POST", "/v1/assess", b"{not json", {"Content-Type": "application/json"})
    assert status == 400 and data["error"]["code"] == "bad_json"
    status, _, data = server.post_json("/v1/assess", {"audio_base64": "@@@not base64@@@", "text": "hello"})
    assert status == 422 and data["error"]["code"] == "bad_base64"
    status, _, data = server.post_json("/v1/assess", {"text": "hello"})
    assert status == 422 and "audio_base64" in data["error"]["message"]
    status, _, data = server.post_form("/v1/assess", [("text", "hello")], [])
    assert status == 422 and data["error"]["code"] == "missing_audio"
    status, _, data = server.post_form("/v1/assess", [], [("audio", "a.wav", wav_bytes(0.5), "audio/wav")])
    assert status == 422 and data["error"]["code"] == "missing_text" and "text" in data["error"]["message"]
    two = [("audio", f"{i}.wav", wav_bytes(0.5), "audio/wav") for i in range(2)]
    status, _, data = server.post_form("/v1/assess/batch", [("text", "hello")], two)
    assert (
        status == 422
        and data["error"]["code"] == "texts_mismatch"
        and "2 'audio' part(s)" in data["error"]["message"]
    )
    status, _, data = server.post_json("/v1/assess", {"audio_base64": "AAAA", "text": 5})
    assert status == 422 and data["error"]["code"] == "missing_text" and "text" in data["error"]["message"]
    status, _, data = server.post_json("/v1/assess", ["not", "an", "object"])
    assert status == 422 and data["error"]["code"] == "bad_json"
    status, _, data = server.post_json("/v1/assess/batch", {"items": []})
    assert status == 422 and data["error"]["code"] == "missing_items"
    files = [("audio", f"{i}.wav", b"x", "audio/wav") for i in range(17)]
    status, _, data = server.post_form("/v1/assess/batch", [("text", "hi")] * 17, files)
    assert status == 413 and data["error"]["code"] == "too_many_items"
    huge = {"Content-Type": "application/json", "Content-Length": str(1 << 30)}
    status, _, data = server.request("POST", "/v1/assess", b"{}", huge)
    assert status == 413 and data["error"]["code"] == "request_too_large"
    status, _, data = server.get("/v1/nothing")
    assert status == 404 and data["error"]["code"] == "not_found"
    assert server.get("/health")[2]["status"] == "ok"


def test_uploaded_names_are_never_paths(server, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("../../evil.wav", "/etc/passwd", "..\\win\\x.wav", "a b?.wav"):
        status, _, data = server.assess(wav_bytes(0.5), "We call it bear", filename=name)
        assert status == 200, data
        assert "/" not in data["audio"]["name"] and "\\" not in data["audio"]["name"]
    assert [r["audio"]["name"] for r in [data]] == ["a b_.wav"]
    assert list(tmp_path.iterdir()) == [] and not (tmp_path.parent.parent / "evil.wav").exists()
