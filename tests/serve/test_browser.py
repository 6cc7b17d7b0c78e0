"""The web page in a real headless browser (Debian chromium + chromium-driver, driven by
selenium): pick a sentence, upload a synthetic recording, read the rendered scores and the
word diagnosis; a wrong file shows the server's message. The screenshot is kept in
tests/artifacts/ (or $LORALAB_TEST_ARTIFACTS).

The model is the tiny random one, whose answers are noise; its generation is scripted here
(everything else is real: upload, decoding, queue, parsing, diagnosis, rendering) so that the
page has known scores and known errors to show.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from .conftest import running_server, wav_bytes

INSTALL = "apt-get install -y chromium chromium-driver (make sysdeps does it when run as root)"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
ARTIFACTS = Path(os.environ.get("LORALAB_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "artifacts"))
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1000,1700",
                  # a fake microphone (a beep) that needs no permission prompt, for the Record button
                  "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                  # no network: any host but loopback fails to resolve (the pages must need none)
                  "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")  # fmt: skip

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER), reason=f"chromium and chromium-driver are missing: {INSTALL}"
)

APA = {"accuracy": 7, "fluency": 8, "prosodic": 6, "total": 7}
# CALL = K AO L said K AA L (substitution); IT = IH T said T (deletion); BEAR = B EH R said B EH R Z.
MDD = {"word_transcript": "we call it bears", "phoneme_transcript": "W IY K AA L T B EH R Z"}


@pytest.fixture
def scripted_answers(monkeypatch):
    from loralab.speech.inference.fast_decode import FastDecoder
    from loralab.speech.inference.generate import BatchedGenerator, GeneratedAnswer

    def generate(self, task, audios, rows):
        raw = json.dumps(MDD if task == "mdd" else APA)
        return [GeneratedAnswer(r.id, task, raw, 9, False) for r in rows]

    monkeypatch.setattr(BatchedGenerator, "generate", generate)
    # One recording at a time (the service's route) answers the same.
    monkeypatch.setattr(
        FastDecoder, "answer", lambda self, task, audio, row, **_: generate(self, task, [audio], [row])[0]
    )


@pytest.fixture
def browser(tmp_path):
    webdriver = pytest.importorskip(
        "selenium.webdriver", reason="selenium is missing (pip install -e '.[dev]')"
    )
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver, condition, seconds: float = 120):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, seconds).until(condition)


def test_page_uploads_a_recording_and_shows_the_diagnosis(tiny_assessor, scripted_answers, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from loralab.serve.app import create_app

    recording = tmp_path / "my take.wav"
    recording.write_bytes(wav_bytes(1.5))
    with running_server(create_app(tiny_assessor)) as client:
        browser.get(f"http://127.0.0.1:{client.port}/")
        _wait(browser, lambda d: d.find_element(By.ID, "model-name").text == "Model: model")
        Select(browser.find_element(By.ID, "sentence-pick")).select_by_visible_text("We call it bear.")
        assert browser.find_element(By.ID, "text").get_attribute("value") == "We call it bear."
        browser.find_element(By.ID, "file").send_keys(str(recording))
        browser.find_element(By.ID, "assess").click()
        _wait(browser, lambda d: d.find_element(By.ID, "result").is_displayed())

        scores = {
            box.get_attribute("data-aspect"): box.find_element(By.CLASS_NAME, "value").text
            for box in browser.find_elements(By.CSS_SELECTOR, "#scores .score")
        }
        assert scores == {k: str(v) for k, v in APA.items()}
        words = {
            span.get_attribute("data-word"): span.get_attribute("data-status")
            for span in browser.find_elements(By.CSS_SELECTOR, "#sentence .word")
        }
        assert words == {"WE": "ok", "CALL": "bad", "IT": "bad", "BEAR": "bad"}
        rows = [
            [td.text for td in row.find_elements(By.TAG_NAME, "td")]
            for row in browser.find_elements(By.CSS_SELECTOR, "#phone-errors tbody tr")
        ]
        assert rows == [
            ["CALL", "said differently", "AO", "AA"],
            ["IT", "left out", "IH", "\u2014"],
            ["BEAR", "added", "\u2014", "Z"],
        ]
        assert browser.find_element(By.ID, "heard-words").text == MDD["word_transcript"]
        assert browser.find_element(By.ID, "heard-phones").text == MDD["phoneme_transcript"]
        assert browser.find_element(By.ID, "download").get_attribute("href").startswith("blob:")
        assert "1.5 s of audio" in browser.find_element(By.ID, "timing").text
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        assert browser.save_screenshot(str(ARTIFACTS / "serve_page.png"))

        not_audio = tmp_path / "notes.txt"
        not_audio.write_text("these are words, not sounds")
        browser.find_element(By.ID, "file").send_keys(str(not_audio))
        browser.find_element(By.ID, "assess").click()
        _wait(browser, lambda d: d.find_element(By.ID, "error").is_displayed())
        assert "notes.txt" in browser.find_element(By.ID, "error").text
        assert "audio" in browser.find_element(By.ID, "error").text
        assert client.get("/health")[2]["served"]["assessed"] == 1
    assert (ARTIFACTS / "serve_page.png").stat().st_size > 10_000


class _NoModel:
    name, description, batch_size = "stub", "no model", 1


def test_docs_render_offline(browser):
    """/docs draws the API's operations with Swagger UI served by the app itself: every host
    but loopback fails to resolve in this browser, so a script or schema from a CDN would not load."""
    from selenium.webdriver.common.by import By

    from loralab.serve.app import create_app

    with running_server(create_app(_NoModel())) as client:
        browser.get(f"http://127.0.0.1:{client.port}/docs")
        _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock-summary-path"), 60)
        paths = [
            e.get_attribute("data-path")
            for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")
        ]
        assert paths == ["/health", "/v1/assess", "/v1/assess/batch"]
        assert (
            "loralab pronunciation assessment" in browser.find_element(By.CSS_SELECTOR, ".info .title").text
        )
        assert not browser.find_elements(By.CSS_SELECTOR, ".errors-wrapper")  # no "could not render"
        browser.find_element(
            By.CSS_SELECTOR, "#operations-default-assess_json_v1_assess_post .opblock-summary"
        ).click()
        _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock-body select.content-type"), 30)
        kinds = [
            o.text for o in browser.find_elements(By.CSS_SELECTOR, ".opblock-body select.content-type option")
        ]
        assert set(kinds) == {"application/json", "multipart/form-data"}
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        assert browser.save_screenshot(str(ARTIFACTS / "serve_docs.png"))


def test_page_records_from_the_microphone(tiny_assessor, scripted_answers, browser):
    """Record (MediaRecorder, chromium's fake microphone), converted to WAV in the page, assessed."""
    from selenium.webdriver.common.by import By

    from loralab.serve.app import create_app

    with running_server(create_app(tiny_assessor)) as client:
        browser.get(f"http://127.0.0.1:{client.port}/")
        browser.find_element(By.ID, "text").send_keys("We call it bear")
        browser.find_element(By.ID, "record").click()
        _wait(browser, lambda d: d.find_element(By.ID, "record").text.endswith("Stop"))
        browser.execute_script("return new Promise((done) => setTimeout(done, 1500))")
        browser.find_element(By.ID, "record").click()
        _wait(browser, lambda d: d.find_element(By.ID, "audio-info").text.startswith("recorded"))
        browser.find_element(By.ID, "assess").click()
        _wait(browser, lambda d: d.find_element(By.ID, "result").is_displayed())
        words = [
            s.get_attribute("data-word") for s in browser.find_elements(By.CSS_SELECTOR, "#sentence .word")
        ]
        assert words == ["WE", "CALL", "IT", "BEAR"]
        seconds = float(browser.find_element(By.ID, "timing").text.split()[0])  # "1.5 s of audio ..."
        assert seconds >= 1.0  # the whole take reached the server as audio
        health = client.get("/health")[2]
    assert health["served"]["assessed"] == 1


# A recording with one known substituted phone: CALL (K AO L) spoken by espeak-ng as K AA L.
SUBSTITUTED = {"word": "CALL", "expected": "AO", "heard": "AA"}
SPOKEN = (("W", "IY"), ("K", "AA", "L"), ("IH", "T"), ("B", "EH", "R"))


@pytest.fixture
def substituted_recording(tmp_path, monkeypatch):
    """The recording (espeak-ng speaks SPOKEN) and, scripted, the answer of a model that hears it."""
    if not shutil.which("espeak-ng"):
        pytest.skip("espeak-ng is missing: apt-get install espeak-ng")
    import soundfile as sf

    from loralab.speech.data.espeak import ESPEAK_SAMPLE_RATE, espeak_word, speak_phonemes
    from loralab.speech.inference.fast_decode import FastDecoder
    from loralab.speech.inference.generate import BatchedGenerator, GeneratedAnswer

    path = tmp_path / "call as caal.wav"
    words = " ".join(
        espeak_word([(p, "1" if p in ("IY", "AA", "IH", "EH") else "") for p in w]) for w in SPOKEN
    )
    sf.write(path, speak_phonemes(words), ESPEAK_SAMPLE_RATE)
    heard = {
        "word_transcript": "we call it bear",
        "phoneme_transcript": " ".join(p for w in SPOKEN for p in w),
    }

    def generate(self, task, audios, rows):
        raw = json.dumps(heard if task == "mdd" else APA)
        return [GeneratedAnswer(r.id, task, raw, 9, False) for r in rows]

    monkeypatch.setattr(BatchedGenerator, "generate", generate)
    monkeypatch.setattr(
        FastDecoder, "answer", lambda self, task, audio, row, **_: generate(self, task, [audio], [row])[0]
    )
    return path


def test_page_marks_the_word_with_the_substituted_phone(tiny_assessor, substituted_recording, browser):
    """Only CALL is wrong; the page names its expected phone AO and the heard AA, in the sentence
    (expected and heard phones under the word) and in the table of wrong sounds."""
    from selenium.webdriver.common.by import By

    from loralab.serve.app import create_app

    with running_server(create_app(tiny_assessor)) as client:
        browser.get(f"http://127.0.0.1:{client.port}/")
        browser.find_element(By.ID, "text").send_keys("We call it bear")
        browser.find_element(By.ID, "file").send_keys(str(substituted_recording))
        browser.find_element(By.ID, "assess").click()
        _wait(browser, lambda d: d.find_element(By.ID, "result").is_displayed())
        spans = {
            s.get_attribute("data-word"): s for s in browser.find_elements(By.CSS_SELECTOR, "#sentence .word")
        }
        assert {w: s.get_attribute("data-status") for w, s in spans.items()} == {
            "WE": "ok", "CALL": "bad", "IT": "ok", "BEAR": "ok"
        }  # fmt: skip
        call = spans[SUBSTITUTED["word"]]
        phones = [p.text for p in call.find_elements(By.CLASS_NAME, "phones")]
        assert phones == ["K AO L", "K AA L"]  # expected, then heard
        assert call.get_attribute("title") == "expected: K AO L\nheard: K AA L"
        rows = [
            [td.text for td in row.find_elements(By.TAG_NAME, "td")]
            for row in browser.find_elements(By.CSS_SELECTOR, "#phone-errors tbody tr")
        ]
        assert rows == [
            [SUBSTITUTED["word"], "said differently", SUBSTITUTED["expected"], SUBSTITUTED["heard"]]
        ]
        assert browser.find_element(By.ID, "no-errors").get_attribute("hidden")
