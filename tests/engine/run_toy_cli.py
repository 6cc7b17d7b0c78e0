"""Run ``loralab <args>`` with the toy system registered (for subprocess tests; configs say
``system: toy``: importing toy_system registers it, nothing is patched).

Used as ``python run_toy_cli.py train CONFIG ...`` and under ``torchrun``. With TOY_DUMP_DIR
set, each process writes its trained parameters to ``rank<R>.safetensors`` afterwards, so a
test can check that all ranks ended with the same weights.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import toy_system  # noqa: E402

from loralab.cli.main import main  # noqa: E402

if __name__ == "__main__":
    code = main(sys.argv[1:])
    dump = os.environ.get("TOY_DUMP_DIR")
    if dump and toy_system.LAST_MODEL:
        from safetensors.torch import save_file

        rank = int(os.environ.get("RANK", "0"))
        save_file(
            toy_system.trainable_state(toy_system.LAST_MODEL[0]), str(Path(dump) / f"rank{rank}.safetensors")
        )
    sys.exit(code)
