"""Float values -> Loihi's integers: decays, thresholds and biases
in `ir.fixed`'s bit widths, and the relative error each conversion leaves, for `ir.quantise`.

`scale` maps float values to a_in units: a float weight w contributes about w * scale to a_in, so
u, v ~ 2^6 * scale * (float u, v). A leaf beside `ir.fixed`: it imports only that and `errors`.
"""

from __future__ import annotations

import numpy as np

from spikestack.errors import OptionsError
from spikestack.ir.fixed import ACT_SHIFT, BIAS_EXP_MAX, BIAS_MANT_MAX, DECAY_MAX, DECAY_UNITY, VTH_MAX


def _int(x) -> np.ndarray:
    return np.asarray(x, dtype=np.int64)


def decay_to_int(decay, offset: int = 0) -> np.ndarray:
    """Per-step decay fraction (du = 1 - alpha, as in Lava's float LIF) -> 12-bit integer.

    round(decay * 4096) - offset, clipped to [0, 4095]; numpy rounds halves to even. A decay of
    1 cannot be represented (4095 leaves 1/4096). Pass offset=U_DECAY_OFFSET for u: the
    hardware adds one to du, so this compensates for it (du=0 still decays u by 1/4096).
    """
    d = np.asarray(decay, dtype=np.float64)
    if not np.all(np.isfinite(d)) or np.any(d < 0) or np.any(d > 1):
        raise OptionsError(f"decay must be a fraction in [0, 1], got {d}")
    return np.clip(np.rint(d * DECAY_UNITY).astype(np.int64) - offset, 0, DECAY_MAX)


def quantise_threshold(vth_float, scale: float) -> np.ndarray:
    """Float threshold -> Lava's vth (compared as vth << 6 with v): round(vth * scale)."""
    vth = np.rint(np.asarray(vth_float, dtype=np.float64) * scale)
    if not np.all(np.isfinite(vth)) or np.any(vth < 0) or np.any(vth > VTH_MAX):
        worst = float(np.nanmax(np.abs(np.asarray(vth_float, dtype=np.float64))))
        raise OptionsError(f"threshold up to {worst:.4g} x scale {scale:.6g} is outside [0, {VTH_MAX}]")
    return vth.astype(np.int64)


def quantise_bias(bias_float, scale: float, exponent: int | None = None):
    """Float bias -> (bias_mant, bias_exp). The bias is added to v unshifted, so the target is
    bias * scale * 2^6; each neuron takes the smallest exponent in [0, 7] whose rounded
    mantissa fits 13 signed bits, keeping as many significant bits as the widths allow, or the
    given `exponent` for all (a format that fixes it, as lava-dl netx does)."""
    target = np.asarray(bias_float, dtype=np.float64) * scale * (1 << ACT_SHIFT)
    exps = np.arange(BIAS_EXP_MAX + 1) if exponent is None else np.array([exponent])
    mants = np.rint(target[..., None] / 2.0**exps)
    fits = np.abs(mants) <= BIAS_MANT_MAX
    if not np.all(fits[..., -1]):
        worst = float(np.abs(np.asarray(bias_float, dtype=np.float64)).max())
        raise OptionsError(f"bias up to {worst:.4g} x scale {scale:.6g} exceeds the 13-bit mantissa x 2^{exps[-1]} "
                           "(more headroom bits lower the scale)")
    index = np.argmax(fits, axis=-1)
    mant = np.take_along_axis(mants, index[..., None], axis=-1)[..., 0]
    return mant.astype(np.int64), exps[index].astype(np.int64)


def relative_error(x_float, x_int, scale: float, exp=0) -> float:
    """||x_int * 2^exp - x_float * scale|| / ||x_float * scale|| (0 when both are zero).

    For weights pass weight_exp; for biases pass scale * 2^ACT_SHIFT and bias_exp."""
    target = np.asarray(x_float, dtype=np.float64) * scale
    err = np.linalg.norm(_int(x_int) * 2.0 ** np.asarray(exp, dtype=np.float64) - target)
    norm = np.linalg.norm(target)
    return float(err / norm) if norm > 0 else float(err)
