"""Atomic writes (loralab.safe_files): a failed write leaves the old file and no temporary
file; a folder swap leaves the new folder and nothing aside."""

from __future__ import annotations

import json

import pytest

from loralab.safe_files import replace_folder, write_atomically, write_json_atomic, write_text_atomic


def test_write_replaces_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "run.json"
    path.write_text("old")
    write_json_atomic(path, {"a": 1, "path": tmp_path})
    assert json.loads(path.read_text()) == {"a": 1, "path": str(tmp_path)}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]


def test_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "status.md"
    write_text_atomic(path, "first\n")

    def half_then_crash(tmp):
        tmp.write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        write_atomically(path, half_then_crash)
    assert path.read_text() == "first\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["status.md"]


def test_temporary_name_is_hidden_and_not_matched_by_the_suffix(tmp_path):
    seen = []
    write_atomically(tmp_path / "train.jsonl", lambda tmp: (seen.append(tmp), tmp.write_text("x")))
    assert seen[0].name.startswith(".tmp-") and seen[0].parent == tmp_path
    assert not seen[0].name.endswith(".jsonl")


@pytest.mark.parametrize("durable", [False, True])
def test_replace_folder_swaps_and_removes_the_old_one(tmp_path, durable):
    final, tmp, aside = tmp_path / "model", tmp_path / ".tmp-model", tmp_path / ".tmp-old-model"
    final.mkdir()
    (final / "weights").write_text("old")
    tmp.mkdir()
    (tmp / "weights").write_text("new")
    assert replace_folder(tmp, final, aside, durable=durable) == final
    assert (final / "weights").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
