"""One process per run directory: a live owner refuses a second train, a dead one is taken over."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest
import toy_system
from test_engine_processes import write_config
from test_engine_trainer import toy_cfg

from loralab.cli.main import main
from loralab.engine.run_lock import LOCK_FILE, run_lock
from loralab.engine.trainer import run_training
from loralab.errors import LoralabError


@pytest.fixture
def sleeper():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def write_lock(run, pid, host=None, **extra):
    run.mkdir(parents=True, exist_ok=True)
    record = {"pid": pid, "host": host or socket.gethostname(), "started": "2024-01-01T00:00:00+00:00"}
    (run / LOCK_FILE).write_text(json.dumps({**record, "command": "loralab train toy", **extra}))


@pytest.fixture
def toy_cli(monkeypatch, tmp_path):
    run = tmp_path / "run"
    return run, write_config(tmp_path / "toy.yaml", run, epochs=1)


@pytest.mark.parametrize("resume", [True, False])
def test_a_live_owner_refuses_a_second_train_and_nothing_is_appended(toy_cli, sleeper, capsys, resume):
    run, config = toy_cli
    write_lock(run, sleeper.pid)
    (run / "events.jsonl").write_text('{"event": "start"}\n{"event": "step", "step": 1}\n')
    before = (run / "events.jsonl").read_bytes(), (run / LOCK_FILE).read_bytes()
    assert main(["train", str(config), *(["--resume"] if resume else [])]) == 2
    err = capsys.readouterr().err
    assert f"pid {sleeper.pid}" in err and str(run) in err and "is being trained by" in err
    assert "--resume" in err and "Traceback" not in err
    assert ((run / "events.jsonl").read_bytes(), (run / LOCK_FILE).read_bytes()) == before
    assert sorted(p.name for p in run.iterdir()) == [LOCK_FILE, "events.jsonl"]


def test_a_stale_lock_is_taken_over_with_a_message_and_released(toy_cli, capsys):
    run, config = toy_cli
    pid = dead_pid()
    write_lock(run, pid)
    assert main(["train", str(config)]) == 0
    err = capsys.readouterr().err
    assert f"taking over the stale lock of pid {pid}" in err
    assert (run / "final_model").is_dir() and not (run / LOCK_FILE).exists()


def test_a_reused_pid_is_not_the_owner(tmp_path, sleeper, capsys):
    # The owner's pid now belongs to another process (started at another time): stale.
    run = tmp_path / "run"
    write_lock(run, sleeper.pid, proc_start="1")
    with run_lock(run):
        assert json.loads((run / LOCK_FILE).read_text())["pid"] != sleeper.pid
    assert "stale lock" in capsys.readouterr().err


def test_a_lock_from_another_host_is_refused_with_how_to_remove_it(tmp_path):
    run = tmp_path / "run"
    write_lock(run, 12345, host="gone-node-7")
    with pytest.raises(LoralabError) as e:
        with run_lock(run):
            pass
    assert "pid 12345 on gone-node-7" in str(e.value) and f"remove {run / LOCK_FILE}" in str(e.value)
    assert (run / LOCK_FILE).exists()


def test_an_unreadable_lock_is_refused_not_removed(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK_FILE).write_bytes(b"\x00\xff garbage")
    with pytest.raises(LoralabError, match="remove"):
        with run_lock(run):
            pass
    assert (run / LOCK_FILE).read_bytes() == b"\x00\xff garbage"


def test_the_lock_is_held_while_training_and_gone_after_a_normal_run(tmp_path):
    run = tmp_path / "run"
    seen = []

    def watching_loss(model, batch):
        seen.append(json.loads((run / LOCK_FILE).read_text()))
        return toy_system.loss_fn(model, batch)

    run_training(toy_cfg(run, epochs=1), toy_system.make_parts(loss=watching_loss))
    assert seen and all(s["pid"] == seen[0]["pid"] for s in seen)
    assert seen[0]["host"] == socket.gethostname() and "started" in seen[0] and "command" in seen[0]
    assert not (run / LOCK_FILE).exists()


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()])
def test_the_lock_is_released_after_a_failed_or_interrupted_run(tmp_path, exc):
    run = tmp_path / "run"

    def failing_loss(model, batch):
        raise exc

    with pytest.raises(type(exc)):
        run_training(toy_cfg(run, epochs=1), toy_system.make_parts(loss=failing_loss))
    assert not (run / LOCK_FILE).exists()
    assert (run / "events.jsonl").exists()  # the run did start: resumable, not locked


def test_the_lock_is_reentrant_and_an_unused_new_directory_is_removed(tmp_path):
    run = tmp_path / "new" / "run"
    with run_lock(run):
        with run_lock(run):
            assert (run / LOCK_FILE).exists()
        assert (run / LOCK_FILE).exists()
    assert not run.exists()


def test_two_gloo_processes_are_refused_together_by_a_live_lock(tmp_path, sleeper):
    # Only rank 0 looks at the lock; rank 1 must stop with it, not wait for it forever.
    from test_engine_processes import BIN, RUNNER, _env

    run = tmp_path / "run"
    config = write_config(tmp_path / "toy.yaml", run, epochs=1)
    write_lock(run, sleeper.pid)
    proc = subprocess.run(
        [str(BIN / "torchrun"), "--standalone", "--nproc_per_node", "2", str(RUNNER), "train", str(config)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert proc.stderr.count(f"is being trained by pid {sleeper.pid}") == 2, proc.stderr[-3000:]
    assert sorted(p.name for p in run.iterdir()) == [LOCK_FILE]
