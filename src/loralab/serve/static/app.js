// The assessment page: record (MediaRecorder) or upload, POST /v1/assess, render the answer.
// Text from the server is always set with textContent (never as HTML).
"use strict";

const $ = (id) => document.getElementById(id);
const state = { audio: null, audioName: null, recorder: null, chunks: [], lastResult: null };
const KINDS = { substitution: "said differently", deletion: "left out", insertion: "added" };

function setStatus(text) { $("status").textContent = text || ""; }
function showError(text) { $("error").textContent = text; $("error").hidden = !text; }

function useAudio(blob, name, info) {
  state.audio = blob;
  state.audioName = name;
  const player = $("playback");
  if (player.src) URL.revokeObjectURL(player.src);
  player.src = URL.createObjectURL(blob);
  player.hidden = false;
  $("audio-info").textContent = info;
}

// Recorded audio arrives as WebM/Opus or similar; the server reads WAV, so decode it here and
// write 16 kHz mono 16-bit PCM WAV.
function encodeWav(samples, rate) {
  const buffer = new ArrayBuffer(44 + samples.length * 2);
  const view = new DataView(buffer);
  const text = (offset, s) => { for (let i = 0; i < s.length; i++) view.setUint8(offset + i, s.charCodeAt(i)); };
  text(0, "RIFF"); view.setUint32(4, 36 + samples.length * 2, true); text(8, "WAVE");
  text(12, "fmt "); view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, rate, true); view.setUint32(28, rate * 2, true); view.setUint16(32, 2, true);
  view.setUint16(34, 16, true); text(36, "data"); view.setUint32(40, samples.length * 2, true);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    view.setInt16(44 + i * 2, s < 0 ? s * 0x8000 : s * 0x7fff, true);
  }
  return new Blob([buffer], { type: "audio/wav" });
}

async function toWav(blob) {
  const context = new AudioContext();
  const decoded = await context.decodeAudioData(await blob.arrayBuffer());
  context.close();
  const rate = 16000;
  const offline = new OfflineAudioContext(1, Math.max(1, Math.ceil(decoded.duration * rate)), rate);
  const source = offline.createBufferSource();
  source.buffer = decoded;
  source.connect(offline.destination);
  source.start();
  const rendered = await offline.startRendering();
  return { wav: encodeWav(rendered.getChannelData(0), rate), seconds: decoded.duration };
}

async function toggleRecording() {
  showError("");
  if (state.recorder && state.recorder.state === "recording") { state.recorder.stop(); return; }
  if (!navigator.mediaDevices || !window.MediaRecorder) {
    showError("This browser cannot record here (it needs https or localhost, and MediaRecorder); upload a file instead.");
    return;
  }
  let stream;
  try { stream = await navigator.mediaDevices.getUserMedia({ audio: true }); }
  catch (e) { showError("No microphone: " + e.message); return; }
  state.chunks = [];
  state.recorder = new MediaRecorder(stream);
  state.recorder.ondataavailable = (e) => { if (e.data.size) state.chunks.push(e.data); };
  state.recorder.onstop = async () => {
    stream.getTracks().forEach((t) => t.stop());
    $("record").classList.remove("recording");
    $("record").textContent = "\u25CF Record";
    try {
      const { wav, seconds } = await toWav(new Blob(state.chunks, { type: state.recorder.mimeType }));
      useAudio(wav, "recording.wav", `recorded ${seconds.toFixed(1)} s`);
      $("file").value = "";
    } catch (e) { showError("Cannot read the recording: " + e.message); }
  };
  state.recorder.start();
  $("record").classList.add("recording");
  $("record").textContent = "\u25A0 Stop";
}

async function assess() {
  showError("");
  const text = $("text").value.trim();
  if (!text) { showError("Type or pick the sentence you read."); return; }
  if (!state.audio) { showError("Record the sentence or choose an audio file first."); return; }
  const form = new FormData();
  form.append("audio", state.audio, state.audioName || "recording.wav");
  form.append("text", text);
  if ($("allow-guessed").checked) form.append("allow_guessed", "true");
  $("assess").disabled = true;
  setStatus("Assessing\u2026");
  try {
    const response = await fetch("/v1/assess", { method: "POST", body: form });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      const message = (data.error && data.error.message) || `HTTP ${response.status}`;
      const retry = response.headers.get("Retry-After");
      showError(message + (retry ? ` (try again in ${retry} s)` : ""));
      setStatus("");
      return;
    }
    render(data);
    setStatus("Done.");
  } catch (e) {
    showError("The server did not answer: " + e.message);
    setStatus("");
  } finally {
    $("assess").disabled = false;
  }
}

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  row.appendChild(td);
}

function renderWords(data) {
  const sentence = $("sentence");
  const tbody = $("phone-errors").querySelector("tbody");
  sentence.replaceChildren();
  tbody.replaceChildren();
  for (const w of data.words) {
    const span = document.createElement("span");
    const status = !data.diagnosis_available ? "unknown" : w.ok ? "ok" : "bad";
    span.className = "word " + status;
    span.dataset.word = w.word;
    span.dataset.status = status;
    span.append(w.word + (w.lexicon === "guessed" ? "*" : ""));
    const phones = document.createElement("span");
    phones.className = "phones";
    phones.textContent = w.expected.join(" ");
    span.appendChild(phones);
    if (status === "bad") {
      const heard = document.createElement("span");
      heard.className = "phones heard";
      heard.textContent = w.heard.join(" ") || "(nothing)";
      span.appendChild(heard);
    }
    span.title = `expected: ${w.expected.join(" ")}\nheard: ${w.heard.join(" ") || "-"}`;
    sentence.appendChild(span);
    for (const e of w.errors) {
      const row = document.createElement("tr");
      row.dataset.type = e.type;
      cell(row, w.word);
      cell(row, KINDS[e.type] || e.type);
      cell(row, e.expected || "\u2014", "phone expected");
      cell(row, e.heard || "\u2014", "phone heard");
      tbody.appendChild(row);
    }
  }
  $("no-errors").hidden = tbody.children.length > 0 || !data.diagnosis_available;
  $("phone-errors").hidden = tbody.children.length === 0;
}

function render(data) {
  state.lastResult = data;
  for (const box of document.querySelectorAll("#scores .score")) {
    const value = data.scores[box.dataset.aspect];
    box.querySelector(".value").textContent = value === undefined || value === null ? "?" : String(value);
  }
  renderWords(data);
  $("heard-words").textContent = data.word_transcript ?? "(could not be read from the model's answer)";
  $("heard-phones").textContent = data.phoneme_transcript ?? "(could not be read from the model's answer)";
  const notes = $("notes");
  notes.replaceChildren();
  for (const n of [...data.notes, ...Object.entries(data.failures).map(([k, v]) => `could not read ${k}: ${v}`)]) {
    const li = document.createElement("li");
    li.textContent = n;
    notes.appendChild(li);
  }
  $("timing").textContent = `${data.audio.duration_s.toFixed(1)} s of audio assessed in ${(data.timing.total_ms / 1000).toFixed(2)} s by ${data.model}.`;
  const link = $("download");
  if (link.href.startsWith("blob:")) URL.revokeObjectURL(link.href);
  link.href = URL.createObjectURL(new Blob([JSON.stringify(data, null, 2)], { type: "application/json" }));
  $("result").hidden = false;
}

$("sentence-pick").addEventListener("change", (e) => { if (e.target.value) $("text").value = e.target.value; });
$("record").addEventListener("click", toggleRecording);
$("file").addEventListener("change", (e) => {
  const file = e.target.files[0];
  if (file) useAudio(file, file.name, `file: ${file.name} (${(file.size / 1024).toFixed(0)} KB)`);
});
$("assess").addEventListener("click", assess);
fetch("/health").then((r) => r.json()).then((h) => { $("model-name").textContent = `Model: ${h.model}`; }).catch(() => {});
