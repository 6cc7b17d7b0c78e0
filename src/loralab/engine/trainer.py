"""The shared training loop: one for every system, on ``accelerate`` (single device, DDP, DeepSpeed).

:func:`train` builds the Accelerator and Runtime, asks the system for its
:class:`~loralab.engine.system.SystemParts` and hands over to :func:`run_training`, which
tests and tools may also call with parts of their own.

Per optimizer step: ``gradient_accumulation`` micro-batches, each loss scaled by
1/(micro-batches in this group) so that the gradient is the mean over the group (the last,
shorter group of an epoch still steps, with its own divisor); gradients synchronise across
processes only on the last micro-batch; clipping; AdamW; warm-up then linear/cosine/constant
decay. Losses are checked for NaN/inf before the update is applied.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

from loralab.config.schema import ExperimentConfig
from loralab.engine import checkpoint as ckpt
from loralab.engine import persistence
from loralab.engine.faults import (
    NonFiniteLoss,
    TrainingOutOfMemory,
    is_oom,
    memory_gb,
    nan_message,
    oom_message,
)
from loralab.engine.reporting import Reporter, Window
from loralab.engine.run_dir import check_run_dir
from loralab.engine.run_lock import hold_run_dir
from loralab.engine.sampler import epoch_plan, micro_batches_per_epoch
from loralab.engine.schedule import make_scheduler, warmup_steps
from loralab.engine.system import SystemParts, system_module
from loralab.errors import LoralabError
from loralab.safe_files import ensure_output_dir


def train(cfg: ExperimentConfig, *, resume: bool = False) -> Path:
    """Train ``cfg`` end to end; returns the run directory (``cfg.run_dir``)."""
    from accelerate.utils import set_seed

    from loralab.engine.setup import make_accelerator

    if cfg.training.max_steps is not None and cfg.training.max_steps < 1:
        # 0 or fewer steps would "finish" a run with an untrained model.
        raise LoralabError(f"training.max_steps (--max-steps) must be >= 1, got {cfg.training.max_steps}")
    accelerator, runtime = make_accelerator(cfg)
    ensure_output_dir(cfg.run_dir, "output_dir (--output-dir)")
    # Refuse a taken run directory (or one another process is training) before spending
    # minutes loading a large model; the lock is held until training ends.
    with hold_run_dir(cfg.run_dir, accelerator):
        runtime.resume_from = check_run_dir(Path(cfg.run_dir), resume, cfg.training.epochs, say=None)
        set_seed(cfg.training.seed)
        parts = system_module(cfg.system).build_parts(cfg, runtime)
        return run_training(cfg, parts, accelerator=accelerator, runtime=runtime, resume=resume)


def run_training(
    cfg: ExperimentConfig, parts: SystemParts, *, accelerator=None, runtime=None, resume=False
) -> Path:
    """Train ``parts`` as configured by ``cfg``; writes checkpoints, logs and final_model/ to cfg.run_dir."""
    if accelerator is None:
        from loralab.engine.setup import make_accelerator

        accelerator, runtime = make_accelerator(cfg)
    run_dir = Path(cfg.run_dir)
    with hold_run_dir(run_dir, accelerator):  # re-entrant: train() may hold it already
        resume_from = check_run_dir(run_dir, resume, cfg.training.epochs, say=accelerator.print)
        accelerator.wait_for_everyone()  # every rank looked before rank 0 writes anything
        if accelerator.is_main_process:
            run_dir.mkdir(parents=True, exist_ok=True)
            ckpt.remove_stale_tmp_dirs(run_dir)
        accelerator.wait_for_everyone()
        loop = TrainingLoop(cfg, parts, accelerator, runtime, run_dir)
        try:
            persistence.start_run(loop, resume_from)
            loop.fit()
        except NonFiniteLoss as e:
            loop.reporter.event("error", loop.step, kind="nan", message=str(e), ids=e.ids)
            raise
        except KeyboardInterrupt:
            loop.reporter.event(
                "error", loop.step, kind="interrupted", message="interrupted", ids=loop.current_ids
            )
            raise
        except LoralabError as e:
            loop.reporter.event("error", loop.step, kind="exception", message=str(e), ids=loop.current_ids)
            raise
        except Exception as e:
            if not is_oom(e):
                message = f"{type(e).__name__}: {e}"
                loop.reporter.event(
                    "error", loop.step, kind="exception", message=message, ids=loop.current_ids
                )
                raise
            message = loop.oom_report()
            loop.reporter.event("error", loop.step, kind="oom", message=message, ids=loop.current_ids)
            raise TrainingOutOfMemory(message) from None
        finally:
            loop.reporter.close()
    return run_dir


def _to_device(value, device):
    import torch

    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=True)
    if isinstance(value, dict):
        return {k: _to_device(v, device) for k, v in value.items()}
    if isinstance(value, list) and value and isinstance(value[0], torch.Tensor):
        return [_to_device(v, device) for v in value]
    return value


def trainable_parameters(model) -> list:
    """The parameters to optimise, upcast to fp32 where a system left them in half precision
    (AMP needs fp32 master weights; fp16 ones fail with 'Attempting to unscale FP16 gradients')."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise LoralabError("the model has no trainable parameters (requires_grad=True): nothing to train")
    for p in params:
        if p.dtype != torch.float32:
            p.data = p.data.float()
    return params


class TrainingLoop:
    """State of one training run: model, optimizer, schedule, counters, reporter.

    :mod:`loralab.engine.persistence` reads its attributes (cfg, parts, acc, runtime, run_dir,
    world, rank, model, optimizer, scheduler, deepspeed, counters, reporter) and changes it only
    through :meth:`attach_reporter`, :meth:`resume_after` and :meth:`checkpoint_saved`.
    """

    def __init__(self, cfg: ExperimentConfig, parts: SystemParts, accelerator, runtime, run_dir: Path):
        import torch

        self.cfg, self.parts, self.acc, self.runtime, self.run_dir = cfg, parts, accelerator, runtime, run_dir
        t = cfg.training
        self.world, self.rank = accelerator.num_processes, accelerator.process_index
        n = len(parts.train_dataset)
        if n == 0:
            raise LoralabError(
                f"{cfg.name}: the training set is empty; check the data settings of '{cfg.system}'"
            )
        if len(parts.lengths) != n:
            raise LoralabError(
                f"system '{cfg.system}': {len(parts.lengths)} lengths for {n} training examples"
            )
        self.micro_per_epoch = micro_batches_per_epoch(n, t.batch_size, self.world)
        self.steps_per_epoch = math.ceil(self.micro_per_epoch / t.gradient_accumulation)
        self.total_steps = self.steps_per_epoch * t.epochs
        if t.max_steps is not None:
            self.total_steps = min(self.total_steps, t.max_steps)
        self.params = trainable_parameters(parts.model)
        optimizer = torch.optim.AdamW(
            self.params, lr=t.learning_rate, betas=tuple(t.adam_betas), weight_decay=t.weight_decay
        )
        warmup = warmup_steps(t.warmup_ratio, self.total_steps)
        self.scheduler = make_scheduler(optimizer, t.lr_schedule, warmup, self.total_steps)
        # The scheduler stays ours: accelerate's wrapper would step it once per process.
        self.model, self.optimizer = accelerator.prepare(parts.model, optimizer)
        self.deepspeed = getattr(accelerator.state, "deepspeed_plugin", None) is not None
        self.step, self.start_epoch, self.epoch = 0, 1, 1
        self.current_ids: list[str] = []
        self.last_checkpoint: Path | None = None
        # A silent stand-in until persistence.start_run opens the real one.
        self.reporter = Reporter(run_dir, False, None, 0, 0)

    # --- what persistence changes -------------------------------------------------------

    def attach_reporter(self, reporter: Reporter) -> None:
        self.reporter = reporter

    def resume_after(self, checkpoint: Path, step: int, epoch: int) -> None:
        """Continue after ``checkpoint``, saved at optimizer step ``step`` at the end of ``epoch``."""
        self.step, self.start_epoch, self.last_checkpoint = step, epoch + 1, checkpoint

    def checkpoint_saved(self, checkpoint: Path) -> None:
        self.last_checkpoint = checkpoint

    # --- the loop ------------------------------------------------------------------------

    def fit(self) -> None:
        t = self.cfg.training
        stopped = self.step >= self.total_steps
        self.reporter.open_bar()
        for epoch in range(self.start_epoch, t.epochs + 1):
            if stopped:
                break
            self.epoch = epoch
            stopped = self._train_epoch(epoch)
            if not stopped or self.step == self.steps_per_epoch * epoch:
                persistence.save_checkpoint(self, epoch)
                self._evaluate(epoch)
        persistence.save_final_model(self)

    def _train_epoch(self, epoch: int) -> bool:
        """One epoch; returns True when training.max_steps stopped it early."""
        from torch.utils.data import DataLoader

        t, parts, acc = self.cfg.training, self.parts, self.acc
        accum = t.gradient_accumulation
        plan = epoch_plan(
            parts.lengths, t.batch_size, t.seed, epoch, t.group_by_length, self.world, self.rank
        )
        loader = DataLoader(
            parts.train_dataset,
            batch_sampler=plan.batches,
            collate_fn=parts.collate,
            num_workers=t.num_workers,
            pin_memory=self.runtime.device.type == "cuda",
        )
        n = len(plan.batches)
        window = Window(self.runtime.device)
        group_losses, group_ids = [], []
        self.model.train()
        for i, batch in enumerate(loader):
            if "ids" not in batch or "num_tokens" not in batch:
                raise LoralabError(f"system '{self.cfg.system}': collate must return 'ids' and 'num_tokens'")
            self.current_ids = list(batch["ids"])
            group_start = i - i % accum
            group_len = min(accum, n - group_start)
            boundary = i == group_start + group_len - 1
            acc.sync_gradients = boundary  # DeepSpeed reads its accumulation boundary from this
            batch = _to_device(batch, self.runtime.device)
            with contextlib.nullcontext() if boundary else acc.no_sync(self.model):
                with acc.autocast():
                    loss = parts.loss_fn(self.model, batch)
                # accelerate divides by gradient_accumulation; rescale so the group's divisor is its size.
                acc.backward(loss * (accum / group_len))
            loss = loss.detach().float()
            group_losses.append(loss)
            group_ids.append(self.current_ids)
            window.add(loss, len(self.current_ids), int(batch["num_tokens"]))
            if not boundary:
                continue
            self._check_finite(group_losses, group_ids, group_start)
            grad_norm = self._clip()
            lr = self.scheduler.get_last_lr()[0]  # the rate this update uses (logged below)
            self.optimizer.step()
            if not acc.optimizer_step_was_skipped:  # fp16 overflow: the scaler skipped; so does the schedule
                self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            group_losses, group_ids = [], []
            self.step += 1
            self.reporter.advance()
            last = i == n - 1 or self.step >= self.total_steps
            if self.step % t.log_every == 0 or last:
                stats = window.collect(acc)
                self.reporter.step(
                    self.step, epoch - 1 + (i + 1) / n, self.runtime.device, grad_norm, lr, stats
                )
            if self.step >= self.total_steps and t.max_steps is not None:
                return True
        return False

    def _check_finite(self, losses: list, ids: list[list[str]], group_start: int) -> None:
        """Stop, on every process, if any micro-batch of this group had a NaN/inf loss."""
        import torch
        from accelerate.utils import gather_object

        finite = torch.isfinite(torch.stack(losses))
        bad_count = (~finite).sum().float()
        if self.world > 1:
            bad_count = self.acc.reduce(bad_count, reduction="sum")
        if bad_count.item() == 0:
            return
        bad = [(group_start + j, ids[j], float(losses[j])) for j in range(len(losses)) if not finite[j]]
        if self.world > 1:
            bad = gather_object(bad)
        micro, bad_ids, value = bad[0]
        all_ids = [i for _, b, _ in bad for i in b]
        message = nan_message(
            value=value,
            step=self.step,
            epoch=self.epoch,
            micro_batch=micro,
            ids=all_ids,
            what="loss",
            last_checkpoint=self.last_checkpoint,
        )
        raise NonFiniteLoss(message, all_ids)

    def _clip(self) -> float | None:
        t = self.cfg.training
        norm = self.acc.clip_grad_norm_(self.params, t.max_grad_norm if t.max_grad_norm > 0 else math.inf)
        if norm is None:  # DeepSpeed clips inside its engine
            engine = getattr(self.model, "get_global_grad_norm", None)
            value = engine() if engine else None
            return float(value) if value is not None else None
        value = float(norm)
        if not math.isfinite(value) and self.acc.scaler is None:
            message = nan_message(
                value=value,
                step=self.step,
                epoch=self.epoch,
                micro_batch=0,
                ids=self.current_ids,
                what="gradient norm",
                last_checkpoint=self.last_checkpoint,
            )
            raise NonFiniteLoss(message, self.current_ids)
        return value

    # --- checkpoints, evaluation, final model --------------------------------------------

    def _evaluate(self, epoch: int) -> None:
        if not (self.cfg.evaluation.every_epoch and self.parts.evaluate is not None):
            return
        if self.acc.is_main_process:
            # Evaluation must not shift the training RNG, or a resumed run would diverge from this one.
            rng = ckpt.capture_rng_state()
            with self.reporter.heartbeat(self.step):
                metrics = self.parts.evaluate(self.acc.unwrap_model(self.model), self.run_dir, epoch)
            ckpt.restore_rng_state(rng)
            self.reporter.metrics(self.step, epoch, metrics)
            shown = ", ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()
            )
            self.reporter.print(f"epoch {epoch}: {shown}")
        self.model.train()
        self.acc.wait_for_everyone()

    def oom_report(self) -> str:
        import torch

        self.optimizer.zero_grad(set_to_none=True)
        peak = memory_gb(self.runtime.device)[1] if self.runtime.device.type != "cpu" else None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        t = self.cfg.training
        return oom_message(
            device=str(self.runtime.device),
            step=self.step,
            epoch=self.epoch,
            batch_size=t.batch_size,
            accumulation=t.gradient_accumulation,
            world_size=self.world,
            peak_gb=peak,
            ids=self.current_ids,
            run_dir=self.run_dir,
        )
