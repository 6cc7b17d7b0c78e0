"""A running loop's state on disk: start (and resume), per-epoch checkpoints, the final model.

Functions of the trainer's loop (:class:`loralab.engine.trainer.TrainingLoop`): they read its
model, optimizer, scheduler, counters and reporter, and change it through its methods only. Collective calls (``save_checkpoint``,
``save_final_model``) must run on every process; only the main one writes shared files,
each process its own RNG state.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from loralab.config.schema import config_to_dict
from loralab.engine import checkpoint as ckpt
from loralab.engine.model_card import write_card
from loralab.engine.reporting import Reporter
from loralab.engine.run_dir import FINAL_MODEL_DIR, corrupt_checkpoint_error
from loralab.engine.run_info import (
    config_differences,
    config_fields,
    config_hash,
    library_versions,
    param_table,
    write_training_config,
)
from loralab.errors import LoralabError
from loralab.safe_files import CorruptFileError


def start_run(loop, resume_from: Path | None) -> None:
    """Restore from ``resume_from`` (if given), open the reporter, record and announce the run."""
    rng_state = restore_checkpoint(loop, resume_from) if resume_from else None
    loop.attach_reporter(
        Reporter(
            loop.run_dir,
            loop.acc.is_main_process,
            purge_step=loop.step + 1 if resume_from else None,
            total_steps=loop.total_steps,
            initial_step=loop.step,
        )
    )
    plan = _record_start(loop, resume_from)
    _announce(loop, plan, resume_from)
    if rng_state is not None:
        ckpt.restore_rng_state(rng_state)  # last, so nothing above consumes the restored stream


def _record_start(loop, resume_from: Path | None) -> dict:
    """``training_config.json`` and the 'start' event; returns the plan (examples, steps, batch)."""
    cfg, t, parts = loop.cfg, loop.cfg.training, loop.parts
    plan = {
        "examples": len(parts.train_dataset),
        "micro_batches_per_epoch": loop.micro_per_epoch,
        "steps_per_epoch": loop.steps_per_epoch,
        "total_steps": loop.total_steps,
        "effective_batch": t.batch_size * t.gradient_accumulation * loop.world,
    }
    device, dtype, autocast = _device_and_dtypes(loop)
    resumed = str(resume_from) if resume_from else None
    if loop.acc.is_main_process:
        write_training_config(
            loop.run_dir, cfg, parts.param_groups, world_size=loop.world, device=device, weight_dtype=dtype,
            autocast_dtype=autocast, precision_why=loop.runtime.precision_why, plan=plan, resumed_from=resumed,
        )  # fmt: skip
    loop.reporter.event(
        "start", loop.step, pid=os.getpid(), host=socket.gethostname(), name=cfg.name, system=cfg.system,
        epochs=t.epochs, steps_per_epoch=loop.steps_per_epoch, total_steps=loop.total_steps,
        batch_size=t.batch_size, gradient_accumulation=t.gradient_accumulation, world_size=loop.world,
        device=device, dtype=dtype, autocast=autocast, precision=loop.runtime.precision_why or None,
        params={k: {"trainable": v.trainable, "total": v.total} for k, v in parts.param_groups.items()},
        resumed_from=resumed,
    )  # fmt: skip
    return plan


def _device_and_dtypes(loop) -> tuple[str, str, str | None]:
    runtime = loop.runtime
    autocast = str(runtime.autocast_dtype).replace("torch.", "") if runtime.autocast_dtype else None
    return str(runtime.device), str(runtime.weight_dtype).replace("torch.", ""), autocast


def _announce(loop, plan: dict, resume_from: Path | None) -> None:
    """The parameter table, the plan, where the run writes and how to watch it."""
    cfg, t = loop.cfg, loop.cfg.training
    device, dtype, autocast = _device_and_dtypes(loop)
    loop.reporter.print(param_table(loop.parts.param_groups))
    loop.reporter.print(
        f"run {cfg.name}: {plan['examples']} examples, {loop.steps_per_epoch} steps/epoch x {t.epochs} epochs "
        f"(effective batch {plan['effective_batch']}), {loop.world} process(es) on {device}, weights {dtype}, "
        f"autocast {autocast or 'off'}"
        + (f" ({loop.runtime.precision_why})" if loop.runtime.precision_why else "")
    )
    if resume_from:
        loop.reporter.print(f"resumed from {resume_from} (epoch {loop.start_epoch - 1}, step {loop.step})")
    loop.reporter.print(
        f"run dir: {loop.run_dir}\n  watch: loralab status {loop.run_dir}\n"
        f"         tensorboard --logdir {loop.run_dir / 'logs'}"
    )


def restore_checkpoint(loop, path: Path):
    """Load weights, optimizer, schedule and counters of ``path``; returns this rank's RNG state."""
    state = ckpt.read_trainer_state(path)
    diffs = []
    if state["config_hash"] != config_hash(loop.cfg):
        diffs = config_differences(state["config_fields"], config_fields(loop.cfg))
    if diffs:  # a hash differing only by a retired key is no difference
        raise LoralabError(
            f"--resume: {path} was trained with different settings:\n  "
            + "\n  ".join(diffs)
            + "\nResume with the original settings, or start a new run (another --output-dir)."
        )
    if state["world_size"] != loop.world:
        # Data order, steps per epoch and the schedule all depend on the number of processes.
        raise LoralabError(
            f"--resume: {path} was written by a run of {state['world_size']} process(es); this one has "
            f"{loop.world}. Resume with the same number of processes (e.g. accelerate launch --num_processes "
            f"{state['world_size']}), or start a new run."
        )
    unwrapped = loop.acc.unwrap_model(loop.model)
    try:
        loop.parts.load_trainable(unwrapped, path)
    except LoralabError:
        raise
    except Exception as e:  # damaged weights that passed the structural check (bit rot)
        raise corrupt_checkpoint_error(loop.run_dir, path, f"{path}: weights unreadable ({e})") from None
    if loop.deepspeed:
        loop.model.load_checkpoint(str(path / "deepspeed"), tag="state", load_module_strict=False)
    else:
        loop.optimizer.load_state_dict(_checked(loop, path, ckpt.load_torch_file, path / ckpt.OPTIMIZER_FILE))
    loop.scheduler.load_state_dict(_checked(loop, path, ckpt.load_torch_file, path / ckpt.SCHEDULER_FILE))
    loop.resume_after(path, int(state["global_step"]), int(state["epoch"]))
    return _checked(loop, path, ckpt.load_rng, path, loop.rank)


def _checked(loop, path: Path, load, *args):
    """``load(*args)``; a damaged file names itself and offers the previous complete checkpoint."""
    try:
        return load(*args)
    except CorruptFileError as e:
        raise corrupt_checkpoint_error(loop.run_dir, path, e) from None


def save_checkpoint(loop, epoch: int) -> None:
    """``checkpoint-epoch-<epoch>/``, atomically (a collective call: every rank takes part)."""
    acc, run_dir = loop.acc, loop.run_dir
    tmp = ckpt.tmp_checkpoint_dir(run_dir, epoch)
    if acc.is_main_process:
        ckpt.prepare_tmp_dir(run_dir, epoch)
    acc.wait_for_everyone()
    ckpt.save_rng(tmp, loop.rank)
    if loop.deepspeed:  # collective: each rank writes its optimizer shard
        loop.model.save_checkpoint(str(tmp / "deepspeed"), tag="state", exclude_frozen_parameters=True)
    acc.wait_for_everyone()
    if acc.is_main_process:
        loop.parts.save_trainable(acc.unwrap_model(loop.model), tmp)
        state = {
            "epoch": epoch,
            "global_step": loop.step,
            "config_hash": config_hash(loop.cfg),
            "config_fields": config_fields(loop.cfg),
            "world_size": loop.world,
            "steps_per_epoch": loop.steps_per_epoch,
            "total_steps": loop.total_steps,
        }
        write_card(tmp, config_to_dict(loop.cfg), epoch, loop.step, library_versions())
        ckpt.write_states(
            tmp,
            None if loop.deepspeed else loop.optimizer.state_dict(),
            loop.scheduler.state_dict(),
            state,
        )
        final = ckpt.commit(tmp, ckpt.checkpoint_dir(run_dir, epoch))
        loop.reporter.event(
            "checkpoint", loop.step, epoch=epoch, path=str(final), size_bytes=ckpt.dir_size(final)
        )
        loop.reporter.print(f"epoch {epoch}: checkpoint {final}")
    loop.checkpoint_saved(ckpt.checkpoint_dir(run_dir, epoch))
    acc.wait_for_everyone()


def save_final_model(loop) -> None:
    """``final_model/`` via the system's save_final and the engine's model card, then the 'end' event."""
    final = loop.run_dir / FINAL_MODEL_DIR
    if loop.acc.is_main_process:
        tmp = loop.run_dir / f"{ckpt.TMP_PREFIX}{FINAL_MODEL_DIR}"
        if tmp.exists():
            import shutil

            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        loop.parts.save_final(loop.acc.unwrap_model(loop.model), tmp)
        epoch = max(loop.epoch, loop.start_epoch - 1)  # a resume with nothing left to train
        write_card(tmp, config_to_dict(loop.cfg), epoch, loop.step, library_versions())
        ckpt.commit(tmp, final)
        loop.reporter.event("end", loop.step, status="finished", final_model=str(final))
        loop.reporter.print(f"final model: {final}")
    loop.acc.wait_for_everyone()
