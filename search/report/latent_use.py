"""VAE diagnostics in the report: active units, KL per dimension, ELBO split, rate–distortion.

Each trial stores a `diagnostics` artifact (search/vae_diagnostics.py) measured on test
images. Here they become plain data: a table for the front configurations, a table for the
latent-dimension sweep (does a larger k use its extra dimensions?), the rate–distortion
points, and sentences that say only what the numbers show.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import plotly.graph_objects as go

from search.configurations import Configuration
from search.records import ARTIFACTS, SWEEP, as_int
from search.records.artifacts import DIAGNOSTICS, read_diagnostics
from search.report.artifacts import ArtifactReader
from search.report.representative import nearest_the_mean
from search.report.trials import StudyRecords


@dataclass(frozen=True)
class LatentUseRow:
    """One configuration: its runs' diagnostics side by side (means where several)."""

    number: int
    numbers: tuple[int, ...]
    latent_dim: int
    active_units: tuple[int, ...]  # one per run with diagnostics
    kl: float
    reconstruction: float
    negative_elbo: float
    loss: str
    beta: float
    kl_per_dim: tuple[float, ...]  # of the first run, largest first
    of_runs: int = 1  # a one-run row of a configuration with this many runs


@dataclass(frozen=True)
class RatePoint:
    number: int
    kl: float
    reconstruction: float
    beta: float
    loss: str
    latent_dim: int | None = None


@dataclass(frozen=True)
class LatentUseInfo:
    front: list[LatentUseRow] = field(default_factory=list)
    k_sweep: list[LatentUseRow] = field(default_factory=list)
    points: list[RatePoint] = field(default_factory=list)
    sentences: list[str] = field(default_factory=list)
    n_images: int | None = None
    note: str | None = None


def _read(records: StudyRecords, reader: ArtifactReader, number: int) -> dict[str, Any] | None:
    artifact_id = records.trial(number).dict_attr(ARTIFACTS).get(DIAGNOSTICS)
    return read_diagnostics(reader.read(artifact_id))


def _row(configuration: Configuration, measured: dict[int, dict[str, Any]]) -> LatentUseRow | None:
    runs = [measured[n] for n in configuration.numbers if n in measured]
    if not runs:
        return None
    first = runs[0]
    return LatentUseRow(
        number=configuration.first,
        numbers=configuration.numbers,
        latent_dim=int(first["latent_dim"]),
        active_units=tuple(int(r["active_units"]) for r in runs),
        kl=float(np.mean([r["kl"] for r in runs])),
        reconstruction=float(np.mean([r["reconstruction"] for r in runs])),
        negative_elbo=float(np.mean([r["reconstruction"] + r["kl"] for r in runs])),
        loss=str(first["loss"]),
        beta=float(first["beta"]),
        kl_per_dim=tuple(sorted((float(v) for v in first.get("kl_per_dim", [])), reverse=True)),
    )


def _run_row(
    configuration: Configuration, measured: dict[int, dict[str, Any]]
) -> LatentUseRow | None:
    """One named run of the configuration (the one nearest its mean that has diagnostics):
    its KL, ELBO terms and per-dimension KL are all that run's, never a mean beside a run."""
    number = next((n for n in nearest_the_mean(configuration) if n in measured), None)
    if number is None:
        return None
    one = Configuration(configuration.key, configuration.params, (number,), ((0.0,),))
    row = _row(one, measured)
    return None if row is None else replace(row, of_runs=configuration.n)


def _units_text(units: Sequence[int]) -> str:
    values = sorted(set(units))
    if len(values) == 1:
        return f"{values[0]} active unit{'' if values[0] == 1 else 's'}"
    return f"{', '.join(str(v) for v in values[:-1])} or {values[-1]} active units"


def use_sentence(row: LatentUseRow) -> str:
    """What the active units say about one configuration's latent dimension."""
    k = row.latent_dim
    runs = f" in its {len(row.active_units)} runs" if len(row.active_units) > 1 else ""
    most = max(row.active_units)
    if min(row.active_units) == k:
        every = {1: "its one dimension", 2: "both its dimensions"}.get(
            k, f"all {k} of its dimensions"
        )
        return f"k = {k} uses {every}{runs}."
    if most < k:
        unused = k - most
        return (
            f"k = {k} uses {_units_text(row.active_units)}{runs}: at least {unused} of its "
            f"{k} dimensions {'is' if unused == 1 else 'are'} unused (z_mean barely moves "
            "with the input there)."
        )
    return (
        f"k = {k} uses {_units_text(row.active_units)}{runs}: whether all its dimensions are "
        "used depends on the seed."
    )


def _sweep_sentences(rows: Sequence[LatentUseRow]) -> list[str]:
    """One sentence per k, and whether k beyond some value added any used dimension."""
    sentences = [use_sentence(r) for r in rows]
    if len(rows) >= 2:
        used = [max(r.active_units) for r in rows]
        peak = max(used)
        first = next(r for r, u in zip(rows, used, strict=True) if u == peak)
        if first is not rows[-1]:
            sentences.append(
                f"No k above {first.latent_dim} uses more dimensions: the most active units in "
                f"any run is {peak}, first reached at k = {first.latent_dim}, so the larger k "
                "add unused dimensions, not capacity."
            )
    return sentences


def latent_use_info(
    records: StudyRecords,
    reader: ArtifactReader,
    front: Sequence[Configuration],
    configurations: Sequence[Configuration],
) -> LatentUseInfo:
    """The VAE diagnostics section's data; empty with a note when no trial stored them."""
    measured = {
        t.number: found for t in records.complete if (found := _read(records, reader, t.number))
    }
    if not measured:
        return LatentUseInfo(
            note="No trial stored VAE diagnostics (studies run before they were measured); "
            "they are written for every new trial."
        )
    front_rows = [r for c in front if (r := _run_row(c, measured)) is not None]
    swept = [
        c
        for c in configurations
        if any(records.trial(n).dict_attr(SWEEP).get("name") == "latent_dim" for n in c.numbers)
    ]
    sweep_rows = sorted(
        (r for c in swept if (r := _row(c, measured)) is not None), key=lambda r: r.latent_dim
    )
    points = [
        RatePoint(
            n,
            float(d["kl"]),
            float(d["reconstruction"]),
            float(d["beta"]),
            str(d["loss"]),
            as_int(records.trial(n).params.get("latent_dim")),
        )
        for n, d in sorted(measured.items())
    ]
    sentences = (
        _sweep_sentences(sweep_rows) if sweep_rows else [use_sentence(r) for r in front_rows]
    )
    n_images = {int(d.get("n_images", 0)) for d in measured.values()}
    return LatentUseInfo(
        front=front_rows,
        k_sweep=sweep_rows,
        points=points,
        sentences=sentences,
        n_images=max(n_images) if n_images else None,
    )


def colour_by(info: LatentUseInfo) -> str | None:
    """What the rate-distortion points are coloured by: beta where it varies, else the latent
    dimension where it varies (a k sweep), else nothing (a scale of one value says nothing)."""
    if len({p.beta for p in info.points}) > 1:
        return "beta"
    if len({p.latent_dim for p in info.points if p.latent_dim is not None}) > 1:
        return "latent_dim"
    return None


def rate_distortion_caption(info: LatentUseInfo) -> str:
    """The figure's caption, naming only what the figure has: the colour, and the panels."""
    colour = colour_by(info)
    losses = sorted({p.loss for p in info.points})
    betas = sorted({p.beta for p in info.points})
    text = (
        "Rate against distortion on test images: each trial's KL term (nats per image) against "
        "its ELBO reconstruction term"
    )
    if colour == "beta":
        text += ", coloured by beta"
    elif colour == "latent_dim":
        text += f", coloured by latent dimension k (all at beta {betas[0]:.3g})"
    elif betas:
        text += f" (all at beta {betas[0]:.3g})"
    if len(losses) > 1:
        text += "; one panel per loss, whose reconstruction terms have different units"
    return text + "."


def rate_distortion_figure(info: LatentUseInfo, template: Any) -> go.Figure:
    """KL (rate) against the reconstruction term (distortion), one panel per loss, coloured
    by `colour_by`."""
    losses = sorted({p.loss for p in info.points})
    traces = []
    colour = colour_by(info)

    def value(p: RatePoint) -> float:
        return p.beta if colour == "beta" else float(p.latent_dim or 0)

    values = [value(p) for p in info.points]
    for i, loss in enumerate(losses):
        shown = [p for p in info.points if p.loss == loss]
        axis = "" if i == 0 else str(i + 1)
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": f"loss {loss}",
                "x": [p.kl for p in shown],
                "y": [p.reconstruction for p in shown],
                "text": [f"trial {p.number}, beta {p.beta:.3g}" for p in shown],
                "hovertemplate": "%{text}<br>KL %{x:.2f} nats<br>reconstruction %{y:.2f}"
                "<extra></extra>",
                "xaxis": f"x{axis}",
                "yaxis": f"y{axis}",
                "marker": (
                    {
                        "color": [value(p) for p in shown],
                        "cmin": min(values),
                        "cmax": max(values),
                        "colorscale": "Viridis",
                        "showscale": i == 0,
                        "colorbar": {"title": {"text": "beta" if colour == "beta" else "k"}},
                        "size": 8,
                    }
                    if colour is not None
                    else {"color": "#2563eb", "size": 8}
                ),
            }
        )
    n = max(len(losses), 1)
    layout: dict[str, Any] = {"template": template, "height": 380, "showlegend": False}
    width = 1.0 / n
    for i, loss in enumerate(losses):
        suffix = "" if i == 0 else str(i + 1)
        layout[f"xaxis{suffix}"] = {
            "domain": [i * width + (0.06 if i else 0), (i + 1) * width - 0.06],
            "title": {"text": f"KL, nats per image ({loss} loss)"},
            "anchor": f"y{suffix}",
        }
        layout[f"yaxis{suffix}"] = {
            "title": {"text": f"reconstruction term ({loss})"},
            "anchor": f"x{suffix}",
        }
    return go.Figure(data=traces, layout=layout)
