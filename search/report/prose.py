"""Numbers to words: one place that formats numbers and builds the report's sentences.

Every sentence here is built from numbers passed in, and says only what those numbers show.
The same formatting functions are Jinja filters, so a number in a table and the same number in
a sentence read identically.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from search.report.sections import CapacityAxis, CapacityGroup, SeedSpread


def fmt_metric(name: str, value: float | None) -> str:
    """SSIM with 4 decimals, MSE with 5 (it lives near 0.01), anything else with 4 digits."""
    if value is None:
        return "-"
    key = name.upper()
    if key.endswith("SSIM"):
        return f"{value:.4f}"
    if key.endswith("MSE"):
        return f"{value:.5f}"
    return f"{value:.4g}"


def fmt_signed(name: str, value: float) -> str:
    """A difference in an objective, with its sign, at the objective's precision."""
    text = fmt_metric(name, abs(value))
    return ("-" if value < 0 else "+") + text


def fmt_mse(value: float | None) -> str:
    return fmt_metric("MSE", value)


def fmt_signed_mse(value: float) -> str:
    return f"{value:+.5f}"


def fmt_number(value: object) -> str:
    """A parameter or attr value for a table: ints as ints, floats with 4 significant digits,
    yes/no for flags (a reader should not meet Python's True/False)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return str(value)
    if isinstance(value, int | float) and abs(value) >= 10_000:
        return fmt_large(float(value))
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def fmt_large(value: float) -> str:
    """A large count with a k/M suffix and 3 significant digits: 263k, 1.63M."""
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.3g}"


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def fmt_count(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _moved(delta: float, up: str, down: str) -> str:
    if delta > 0:
        return up
    if delta < 0:
        return down
    return "stayed"


def fmt_values(values: Sequence[float]) -> str:
    """Parameter values as a sweep list for the command line: 2,4,8."""
    return ",".join(fmt_number(int(v) if float(v).is_integer() else v) for v in values)


def run_command(study: str, *options: str) -> str:
    """A `python -m search run` command on this study (the name quoted for a shell)."""
    return " ".join(["python -m search run --study", shlex.quote(study), *options])


def sweep_command(study: str, name: str, values: Sequence[float], repeats: int = 3) -> str:
    """The command that measures one axis under several seeds (a repeated one-factor sweep)."""
    return run_command(study, f"--sweep {name}={fmt_values(values)}", f"--repeats {repeats}")


def confirm_command(study: str, repeats: int = 2) -> str:
    """The command that re-runs the front's configurations under new seeds.

    `--confirm R` confirms at the end of any run; `--trials` must be positive, so one more
    sampled trial comes with it.
    """
    return run_command(study, "--trials 1", f"--confirm {repeats}")


def _joined(labels: Sequence[str]) -> str:
    if len(labels) <= 1:
        return "".join(labels)
    return ", ".join(labels[:-1]) + " and " + labels[-1]


def _noise_n(axis: CapacityAxis, group: CapacityGroup) -> int:
    """Runs behind a group's number, as the noise test counts them.

    A mean over a sweep value's seeds has the standard error of n runs. A median over
    configurations whose other parameters differ is no average over seeds: it is judged as
    conservatively as a single run.
    """
    return group.n if axis.statistic == "mean" else 1


def capacity_sentences(axis: CapacityAxis, spread: SeedSpread | None) -> list[str]:
    """What train error, validation error and their gap did along one capacity axis.

    With no repeated configuration (`spread` None) the study does not know its noise: the
    numbers are given, no verdict is drawn, and the command that would measure the noise is
    named. Otherwise two numbers differ only by more than the seed-to-seed threshold, t x the
    standard error of their difference (`SeedSpread`). The rule for "overfitting" is the
    report's only one: validation error rises beyond its minimum while the gap (validation
    minus train) widens, both by more than the threshold, and the widening carries at least
    half of the rise (if train error rose as much, the model got worse, it did not overfit).
    """
    groups = axis.groups
    if len(groups) < 2:
        return [
            f"Only one value of {axis.title} has both train and validation errors, "
            "so nothing can be compared along this axis."
        ]
    first, last = groups[0], groups[-1]
    d_val = last.val_mse - first.val_mse
    d_train = last.train_mse - first.train_mse
    d_gap = last.gap - first.gap
    if spread is None:
        command = f" `{axis.evidence_command}`" if axis.evidence_command else ""
        return [
            f"At {axis.title} {first.label} and {last.label} ({axis.source}), the "
            f"{axis.statistic} validation MSE was {fmt_mse(first.val_mse)} and "
            f"{fmt_mse(last.val_mse)} ({fmt_signed_mse(d_val)}), the {axis.statistic} train MSE "
            f"{fmt_mse(first.train_mse)} and {fmt_mse(last.train_mse)} "
            f"({fmt_signed_mse(d_train)}), and the gap {fmt_mse(first.gap)} and "
            f"{fmt_mse(last.gap)} ({fmt_signed_mse(d_gap)}).",
            "No configuration of this study was run under more than one seed, so nobody knows "
            "how much of these differences is seed-to-seed noise: no verdict on this axis is "
            f"drawn from single runs. Repeats would give the evidence:{command}.",
        ]
    sentences = [
        f"From {axis.title} {first.label} to {last.label} ({axis.source}), the {axis.statistic} "
        f"validation MSE {_moved(d_val, 'rose', 'fell')} from {fmt_mse(first.val_mse)} to "
        f"{fmt_mse(last.val_mse)} ({fmt_signed_mse(d_val)}), the {axis.statistic} train MSE "
        f"{_moved(d_train, 'rose', 'fell')} from {fmt_mse(first.train_mse)} to "
        f"{fmt_mse(last.train_mse)} ({fmt_signed_mse(d_train)}), and the gap "
        # rose/fell, not widened/narrowed: a gap below zero that rises toward zero narrows
        f"{_moved(d_gap, 'rose', 'fell')} from {fmt_mse(first.gap)} to "
        f"{fmt_mse(last.gap)} ({fmt_signed_mse(d_gap)})."
    ]
    ends_threshold = spread.val_threshold(_noise_n(axis, first), _noise_n(axis, last))
    if abs(d_val) <= ends_threshold:
        sentences.append(
            f"The change in validation MSE between the two ends ({fmt_signed_mse(d_val)}) is "
            f"within the seed-to-seed threshold of {fmt_mse(ends_threshold)}, so the two ends "
            "are not distinguishable."
        )
    else:
        mixed = (
            "; other parameters vary between the configurations behind these medians, so "
            "part of the difference may be theirs"
            if axis.statistic != "mean"
            else ""
        )
        sentences.append(
            f"The change in validation MSE between the two ends ({fmt_signed_mse(d_val)}) "
            f"exceeds the seed-to-seed threshold of {fmt_mse(ends_threshold)}: validation "
            f"error is {'lower' if d_val < 0 else 'higher'} at {axis.title} {last.label} than "
            f"at {first.label} at this budget{mixed}."
        )

    best_index = min(range(len(groups)), key=lambda i: (groups[i].val_mse, i))
    best = groups[best_index]
    tied = [
        g
        for g in groups
        if g is not best
        and g.val_mse - best.val_mse
        <= spread.val_threshold(_noise_n(axis, best), _noise_n(axis, g))
    ]
    if tied:
        together = [g.label for g in groups if g is best or g in tied]
        thresholds = [spread.val_threshold(_noise_n(axis, best), _noise_n(axis, g)) for g in tied]
        low, high = fmt_mse(min(thresholds)), fmt_mse(max(thresholds))
        sentences.append(
            f"The smallest {axis.statistic} validation MSE, {fmt_mse(best.val_mse)} at "
            f"{axis.title} {best.label}, is within the seed-to-seed threshold "
            f"({low if low == high else f'{low} to {high}'}) of the values at "
            f"{_joined([g.label for g in tied])}: {axis.title} {_joined(together)} cannot be "
            "told apart at this budget."
        )
    if best_index == len(groups) - 1:
        if not tied:
            runner = min((g for g in groups if g is not best), key=lambda g: g.val_mse)
            margin = runner.val_mse - best.val_mse
            threshold = spread.val_threshold(_noise_n(axis, best), _noise_n(axis, runner))
            sentences.append(
                f"Validation MSE is lowest at the largest {axis.title} ({best.label}): "
                f"{fmt_mse(best.val_mse)} against {fmt_mse(runner.val_mse)} at {runner.label}, "
                f"{fmt_mse(margin)} apart, beyond the seed-to-seed threshold of "
                f"{fmt_mse(threshold)}; no rise in validation error is visible along this axis."
            )
        return sentences
    n_best, n_last = _noise_n(axis, best), _noise_n(axis, last)
    val_threshold = spread.val_threshold(n_best, n_last)
    gap_threshold = spread.gap_threshold(n_best, n_last)
    rise = last.val_mse - best.val_mse
    widening = last.gap - best.gap
    rise_counts = rise > val_threshold
    # validation rise = train rise + gap widening; it is overfitting only when the widening
    # gap, not rising train error, carries most of the rise
    widening_counts = widening > max(gap_threshold, 0.5 * rise)
    where = (
        f"From {axis.title} {best.label} ({fmt_mse(best.val_mse)}) to {last.label}, validation "
        f"MSE rose by {fmt_mse(rise)} while the gap changed by {fmt_signed_mse(widening)}"
    )
    if rise_counts and widening_counts:
        sentences.append(
            f"Validation MSE is lowest at {axis.title} {best.label} ({fmt_mse(best.val_mse)}); "
            f"from there to {last.label} it rose by {fmt_mse(rise)} while the gap widened by "
            f"{fmt_mse(widening)}, both beyond the seed-to-seed thresholds "
            f"({fmt_mse(val_threshold)}, {fmt_mse(gap_threshold)}): validation error rises while "
            f"the gap widens, the signature of overfitting beyond {axis.title} {best.label}."
        )
    elif not rise_counts:
        sentences.append(
            f"{where}; the rise is within the seed-to-seed threshold of "
            f"{fmt_mse(val_threshold)}, so it is not distinguishable from noise."
        )
    else:
        if widening <= 0:
            reason = "the gap did not widen, train error rose instead"
        elif widening <= 0.5 * rise:
            reason = "train error rose too, so the widening gap carries less than half the rise"
        else:
            reason = f"the gap widened by less than the threshold of {fmt_mse(gap_threshold)}"
        sentences.append(f"{where}; {reason}, so this rise is not attributed to overfitting.")
    return sentences


def learning_curve_sentence(last_changes: Sequence[float], n_trials: int) -> str | None:
    """How many Pareto trials still improved validation MSE in their final epoch."""
    if not last_changes:
        return None
    falling = sum(1 for change in last_changes if change < 0)
    median = sorted(last_changes)[len(last_changes) // 2]
    missing = n_trials - len(last_changes)
    without = f"; {missing} had no curve recorded" if missing else ""
    if len(last_changes) == 1:
        return (
            f"Validation MSE was {'still falling' if falling else 'no longer falling'} in the "
            "last epoch of the only front run with a learning curve (last-epoch change "
            f"{fmt_signed_mse(median)}){without}."
        )
    return (
        f"Validation MSE was still falling in the last epoch for {falling} of the "
        f"{len(last_changes)} front runs with a learning curve (median last-epoch change "
        f"{fmt_signed_mse(median)}){without}."
    )
