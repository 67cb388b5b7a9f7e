"""Which one run stands for a configuration: the run nearest the configuration's mean.

A configuration is measured by several runs under different seeds; a picture (a grid of
reconstructions, a latent map) or a file (an exported model) can only come from one of them.
Taking the first or the best run shows a lucky or an early draw; the run nearest the mean
shows what the configuration typically does. Distance is measured per objective in units of
the configuration's own seed-to-seed SD (an objective with no spread counts for nothing), so
SSIM and MSE weigh alike whatever their scales.
"""

from __future__ import annotations

import numpy as np

from search.configurations import Configuration


def nearest_the_mean(configuration: Configuration) -> list[int]:
    """The configuration's trial numbers, nearest its mean first (ties: lower number first)."""
    runs = np.array(configuration.runs, dtype=np.float64)
    sd = runs.std(axis=0, ddof=1) if len(runs) >= 2 else np.zeros(runs.shape[1])
    scale = np.where(sd > 0, sd, np.inf)
    distance = np.sqrt((((runs - runs.mean(axis=0)) / scale) ** 2).sum(axis=1))
    order = sorted(range(len(runs)), key=lambda i: (float(distance[i]), configuration.numbers[i]))
    return [configuration.numbers[i] for i in order]


def representative(configuration: Configuration) -> int:
    """The trial number of the run nearest the configuration's mean."""
    return nearest_the_mean(configuration)[0]
