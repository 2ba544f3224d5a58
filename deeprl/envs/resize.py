"""Resizing images by area averaging, with NumPy only: shared by Atari's frame warp and the pixel
observations of any rendering env."""

from __future__ import annotations

import numpy as np


def area_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Input indices and weights that resize a length-n_in signal to n_out by area averaging.

    Output pixel i covers the input interval [i*s, (i+1)*s) with s = n_in / n_out; its value is
    the mean of the input over that interval, each input pixel weighted by how much of it lies
    inside (what OpenCV calls INTER_AREA when shrinking).  Only a few input pixels touch each
    output pixel, so this returns them as "taps": ``out[i] = sum_k weight[i, k] * x[index[i, k]]``
    with ``index`` and ``weight`` of shape (n_out, k); unused taps have weight 0.  Each row of
    weights sums to 1.
    """
    scale = n_in / n_out
    lo = np.arange(n_out)[:, None] * scale
    hi = lo + scale
    j = np.arange(n_in)[None, :]
    dense = np.clip(np.minimum(hi, j + 1) - np.maximum(lo, j), 0.0, None) / scale  # (n_out, n_in)
    k = int((dense > 0).sum(axis=1).max())
    index = np.zeros((n_out, k), dtype=np.intp)
    weight = np.zeros((n_out, k), dtype=np.float32)
    for i in range(n_out):
        (nonzero,) = np.nonzero(dense[i])
        index[i, : len(nonzero)] = nonzero
        weight[i, : len(nonzero)] = dense[i, nonzero]
    return index, weight
