"""A short automatic judgement of a run's curves, by fixed, documented rules.

All rules look at the *logged* steps (one record every ``training.log_every`` steps).

* **Window.** ``w = max(1, min(10, n // 5))`` logged points (n = finite losses); the loss
  drop compares the mean of the first ``w`` losses with the mean of the last ``w`` (one
  noisy step should not decide it), and the loss plot's moving average uses the same ``w``.
* **NaN/inf.** Any non-finite loss or grad norm is reported with its steps (level *bad*).
* **Trend** of a series (loss, grad norm) over the last half of its logged points (at least
  4): a least-squares line through (step, value); its rise over that span divided by the
  mean value is the relative change. Below -2 %: falling; above +2 %: rising; otherwise
  flat. A flat loss is reported as a *plateau*.
* **Divergence.** The moving averages (window ``w``) of the loss: the last one above 1.5x
  the lowest one seen before it (level *bad*).
* **Grad-norm spikes.** Logged grad norms above 5x the median of all logged grad norms.
* **Clipping.** With ``training.max_grad_norm`` > 0, the share of logged steps whose
  (pre-clipping) grad norm exceeded it: information, not a fault.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from loralab.reports.run_log import StepPoint

TREND_THRESHOLD = 0.02
MIN_TREND_POINTS = 4
DIVERGENCE_FACTOR = 1.5
SPIKE_FACTOR = 5.0
GRAD_RISE_WARN = 0.5


@dataclass
class Finding:
    level: str  # 'ok' | 'info' | 'warn' | 'bad'
    topic: str  # 'loss', 'grad_norm', 'nan', 'progress'
    message: str


def window_size(n: int) -> int:
    """Points averaged at each end for the loss drop, and the moving-average width."""
    return max(1, min(10, n // 5))


def moving_average(values: list[float], w: int) -> list[float]:
    """Trailing mean over ``w`` points (the first ``w-1`` average what exists so far)."""
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= w:
            acc -= values[i - w]
        out.append(acc / min(i + 1, w))
    return out


def relative_change(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope times the x-span, divided by the mean |y|: the fitted line's
    change over the window as a fraction of the level. NaN if it cannot be computed."""
    if len(xs) < 2 or max(xs) == min(xs):
        return math.nan
    slope, _ = np.polyfit(np.asarray(xs, float), np.asarray(ys, float), 1)
    level = float(np.mean(np.abs(ys)))
    if level == 0:
        return math.nan
    return float(slope * (max(xs) - min(xs)) / level)


def _steps_text(steps: list[int], limit: int = 5) -> str:
    text = ", ".join(str(s) for s in steps[:limit])
    return text + (f" (+{len(steps) - limit} more)" if len(steps) > limit else "")


def trend(points: list[tuple[int, float]]) -> tuple[str, float, int, int] | None:
    """('falling'|'rising'|'flat', relative change, first step, last step) over the last half."""
    half = points[len(points) // 2 :]
    if len(half) < MIN_TREND_POINTS:
        return None
    change = relative_change([p[0] for p in half], [p[1] for p in half])
    if not math.isfinite(change):
        return None
    kind = "falling" if change < -TREND_THRESHOLD else "rising" if change > TREND_THRESHOLD else "flat"
    return kind, change, half[0][0], half[-1][0]


def analyse(steps: list[StepPoint], max_grad_norm: float | None = None) -> list[Finding]:
    """Findings about a run's logged steps: too early, NaN/inf, the loss, the grad norm."""
    findings: list[Finding] = []
    if len(steps) < 3:
        findings.append(Finding("info", "progress", f"only {len(steps)} logged step(s): too early to judge"))
    for name, label in (("loss", "loss"), ("grad_norm", "grad norm")):
        nonfinite = [p.step for p in steps if name in p.nonfinite]
        if nonfinite:
            findings.append(Finding("bad", "nan", f"{label} is NaN/inf at step(s) {_steps_text(nonfinite)}"))
    findings += _loss_findings([(p.step, p.loss) for p in steps if math.isfinite(p.loss)])
    findings += _grad_findings(
        [(p.step, p.grad_norm) for p in steps if math.isfinite(p.grad_norm)], max_grad_norm
    )
    return findings


def _loss_findings(losses: list[tuple[int, float]]) -> list[Finding]:
    """The loss trend (falling, rising, plateau) and divergence from its lowest window mean."""
    findings = []
    if (t := trend(losses)) is not None:
        kind, change, a, b = t
        if kind == "falling":
            findings.append(Finding("ok", "loss", f"loss falling: {change:+.1%} over steps {a}-{b}"))
        elif kind == "rising":
            findings.append(Finding("warn", "loss", f"loss rising: {change:+.1%} over steps {a}-{b}"))
        else:
            text = f"loss plateau: {change:+.1%} over steps {a}-{b} (within ±{TREND_THRESHOLD:.0%})"
            findings.append(Finding("info", "loss", text))
    if len(losses) >= 2:
        w = window_size(len(losses))
        smooth = moving_average([v for _, v in losses], w)
        best_i = int(np.argmin(smooth[:-1])) if len(smooth) > 1 else 0
        if smooth[-1] > DIVERGENCE_FACTOR * smooth[best_i] > 0:
            text = (
                f"diverging: recent mean loss {smooth[-1]:.4g} is {smooth[-1] / smooth[best_i]:.1f}x the "
                f"lowest {smooth[best_i]:.4g} (at step {losses[best_i][0]}; window {w})"
            )
            findings.append(Finding("bad", "loss", text))
    return findings


def _grad_findings(grads: list[tuple[int, float]], max_grad_norm: float | None) -> list[Finding]:
    """The grad-norm trend, spikes over the median, and how often clipping applies."""
    findings = []
    if (t := trend(grads)) is not None:
        kind, change, a, b = t
        level = "warn" if change > GRAD_RISE_WARN else "info"
        word = {"falling": "falling", "rising": "rising", "flat": "stable"}[kind]
        findings.append(Finding(level, "grad_norm", f"grad norm {word}: {change:+.1%} over steps {a}-{b}"))
    if not grads:
        return findings
    median = float(np.median([g for _, g in grads]))
    spikes = [s for s, g in grads if median > 0 and g > SPIKE_FACTOR * median]
    if spikes:
        text = (
            f"grad-norm spikes (> {SPIKE_FACTOR:g}x the median {median:.3g}) at step(s) {_steps_text(spikes)}"
        )
        findings.append(Finding("warn", "grad_norm", text))
    if max_grad_norm and max_grad_norm > 0:
        share = sum(g > max_grad_norm for _, g in grads) / len(grads)
        text = f"grad norm above the clipping threshold {max_grad_norm:g} in {share:.0%} of logged steps"
        findings.append(Finding("info", "grad_norm", text))
    return findings
