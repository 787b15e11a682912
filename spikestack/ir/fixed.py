"""Loihi fixed-point arithmetic, bit-exact with Lava's bit-accurate process models (lava-nc 0.10).

Ground truth is Lava's code, not its docstrings: `PyLifModelBitAcc` (lava/proc/lif/models.py),
`PyDenseModelBitAcc` (lava/proc/dense/models.py), `PyConvModelFixed` (lava/proc/conv/models.py)
and lava/utils/weightutils.py. Where Lava leans on numpy's int32 overflow (its message channels
and LIF state are int32), we reproduce the wrap, so results match for any int32 input, not only
for inputs inside the documented bit widths. Pure functions on int64 arrays; leading batch
dimensions broadcast. `neuron_step_fixed` is a population's whole step, our extensions included,
for the simulator's loihi mode and our Lava model alike. The register arithmetic
(`lif_registers`, `population_registers` and the helpers they call) is written with plain operators
only, so numpy runs it on arrays and the compiled engine (numba) compiles the same functions for
one neuron at a time: there is no second copy of these equations. Float values become these
integers in `ir.discretise`. A leaf: imported by code that runs without Lava, it imports neither lava nor any
spikestack module but `errors`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spikestack.errors import OptionsError

# --- LIF neuron (lava/proc/lif/models.py, AbstractPyLifModelFixed / PyLifModelBitAcc) ---
U_BITS = V_BITS = 24  # u and v registers; u wraps, v saturates
DECAY_BITS = 12  # du, dv are 12-bit unsigned: factor (4096 - d) / 4096
DECAY_UNITY = 1 << DECAY_BITS
DECAY_MAX = DECAY_UNITY - 1
U_DECAY_OFFSET = 1  # Loihi's ds_offset: u always decays by one extra LSB, (du + 1) / 4096
V_DECAY_OFFSET = 0  # dm_offset: v decays by exactly dv / 4096
ACT_SHIFT = 6  # synaptic input is shifted left 6 bits before entering u
VTH_SHIFT = 6  # threshold is shifted left 6 bits before the compare with v
VTH_BITS = 17  # vth: unsigned 17-bit
VTH_MAX = (1 << VTH_BITS) - 1
BIAS_MANT_BITS = 13  # bias_mant: signed 13-bit, i.e. -4096..4095
BIAS_MANT_MAX = (1 << (BIAS_MANT_BITS - 1)) - 1
BIAS_EXP_MAX = 7  # bias_exp: unsigned 3-bit
NETX_BIAS_EXP = 6  # lava-dl netx gives every CUBA neuron bias_exp 6 (netx/hdf5.py: get_neuron_params)
RESETS = ("zero", "subtract")

# --- Synapses (lava/proc/dense/models.py, lava/utils/weightutils.py, lava/proc/conv) ---
WEIGHT_BITS = 8  # weights are clipped to 8 magnitude bits, then LSBs truncated
WEIGHT_EXP_MIN, WEIGHT_EXP_MAX = -8, 7  # Loihi's 4-bit signed weight exponent (as nengo-loihi)
CHANNEL_BITS = 32  # Lava's fixed-point ports carry int32: sums and shifts wrap there
CONV_OUT_BITS = 24  # PyConvModelFixed wraps its output to 24-bit two's complement
SIGN_MODES = ("mixed", "excitatory", "inhibitory")


def _int(x) -> np.ndarray:
    return np.asarray(x, dtype=np.int64)


def wrap_signed(x, bits: int) -> np.ndarray:
    """Two's-complement wrap into [-2^(bits-1), 2^(bits-1)): what an int32 numpy overflow does
    (bits=32) and what Lava's conv `signed_clamp` does to its output (bits=24)."""
    return _wrap(_int(x), bits)


def _wrap(x, bits: int):  # wrap_signed on int64 values, numpy or compiled
    half = 1 << (bits - 1)
    return ((x + half) & (2 * half - 1)) - half  # two's complement: & 2^bits - 1 is mod 2^bits, also below 0


def fold_signed(x, bits: int) -> np.ndarray:
    """Lava's LIF current overflow: one conditional +-2^bits, not a modulo.

    Values above 2^(bits-1) lose 2^bits and values at or below -2^(bits-1) gain it, so the range
    is (-2^(bits-1), 2^(bits-1)]: +2^23 stays, -2^23 becomes +2^23. For |x| < 3 * 2^(bits-1)
    (always so while a_in stays within Dense's nominal 16 bits) the result is in range and
    congruent to x; beyond it Lava leaves u outside 24 bits, and so do we, to stay bit-exact.
    """
    return _fold(_int(x), bits)


def _fold(x, bits: int):  # fold_signed on int64 values
    half = 1 << (bits - 1)
    return x - 2 * half * (x > half) + 2 * half * (x <= -half)


def clip_signed(x, bits: int) -> np.ndarray:
    """Lava's voltage saturation: symmetric, to +-(2^(bits-1) - 1)."""
    return _clip(_int(x), bits)


def _clip(x, bits: int):  # clip_signed on int64 values
    limit = (1 << (bits - 1)) - 1
    return x + (limit - x) * (x > limit) - (limit + x) * (x < -limit)


def effective_bias(bias_mant, bias_exp) -> np.ndarray:
    """bias_mant * 2^bias_exp as Lava scales it: a left shift, or for a negative exponent an
    arithmetic right shift (rounds towards -inf). Added to v unshifted, unlike a_in and vth."""
    bias_mant, bias_exp = _int(bias_mant), _int(bias_exp)
    return (bias_mant << (bias_exp * (bias_exp > 0))) >> (-bias_exp * (bias_exp < 0))


def _decay(x, d):
    # x * (4096 - d) >> 12 on the magnitude: truncates towards zero, unlike a plain >> (floor).
    product = x * (DECAY_UNITY - d)
    magnitude = abs(product) >> DECAY_BITS
    return magnitude - 2 * magnitude * (product < 0)


def _check_reset(reset: str) -> None:
    if reset not in RESETS:
        raise OptionsError(f"reset must be one of {RESETS}, got '{reset}'")


def lif_registers(a_in, u, v, du, dv, bias, threshold, subtract, at_threshold, many):
    """`lif_step_fixed`'s arithmetic on int64 values (arrays or scalars); bias is already
    `effective_bias`, threshold already vth << 6, the options booleans. Returns (spikes, u, v)."""
    # Lava adds the shifted input in int32 (one wrap covers the shift's wrap too), then folds.
    u = _fold(_wrap(_decay(u, du + U_DECAY_OFFSET) + (a_in << ACT_SHIFT), CHANNEL_BITS), U_BITS)
    v = _clip(_wrap(_decay(v, dv + V_DECAY_OFFSET) + u + bias, CHANNEL_BITS), V_BITS)
    if many:  # a graded spike of floor(v / threshold); a zero threshold divides by one
        spikes = (v >= threshold) * (v // (threshold + (threshold == 0)))
    elif at_threshold:
        spikes = (v >= threshold) * 1
    else:
        spikes = (v > threshold) * 1
    fired = spikes > 0
    v = v - fired * (spikes * threshold if subtract else v)  # v - s thresholds, or 0, where it fired
    return spikes, u, v


def lif_step_fixed(a_in, u, v, du, dv, bias_mant, bias_exp, vth, reset: str = "zero", compare: str = ">",
                   spikes_per_step: str = "one"):
    """One time step of Lava's `PyLifModelBitAcc`; returns (spikes 0/1, u, v), all int64.

    u' = fold24(trunc(u * (4096 - du - 1) / 4096) + (a_in << 6))
    v' = clip24(trunc(v * (4096 - dv) / 4096) + u' + bias_mant * 2^bias_exp)
    spike where v' > vth << 6 (strict), then v' = 0 ("zero", Lava) or v' - (vth << 6)
    ("subtract", our extension; no re-clip needed since v' > vth << 6 >= 0). Our extensions for Sinabs and
    Rockpool: compare ">=" fires at v' >= vth << 6 (integers: exactly v' > (vth << 6) - 1), and
    spikes_per_step "many" sends floor(v' / (vth << 6)) as one graded spike (Loihi 2's graded spikes carry
    it: v' < 2^23 and vth << 6 >= 2^6 bound it by 2^17), removing that many thresholds under "subtract"
    (needs vth >= 1, which `ir.quantise` checks). a_in is the Dense output of the previous step (Dense
    delays by one step). The initial potential is simply the v passed at the first step. Inputs are
    int32-range values, as on Lava's ports and in its int32 state; Lava's int32 wraps are reproduced. u is
    never reset, as in Lava.
    """
    _check_reset(reset)
    a_in, u, v, du, dv, vth, mant, exp = (_int(x) for x in (a_in, u, v, du, dv, vth, bias_mant, bias_exp))
    spikes, u, v = lif_registers(a_in, u, v, du, dv, effective_bias(mant, exp), vth << VTH_SHIFT,
                                 reset == "subtract", compare == ">=", spikes_per_step == "many")
    return _int(spikes), _int(u), _int(v)


# --- A population's whole step: the LIF above plus the extensions the stock LIF lacks. The
# simulator's loihi mode and our Lava model (ProgramNeuron) both call it, so they cannot drift. ---

# A threshold no 24-bit voltage reaches: how a non-spiking neuron (LI, CubaLI, I) runs through
# Lava's LIF update without ever spiking or resetting.
NEVER = 1 << 40


@dataclass(frozen=True)
class NeuronInts:
    """A neuron population in Lava's LIF integers plus our extensions, broadcast to its shape."""

    du: np.ndarray
    dv: np.ndarray
    bias_mant: np.ndarray
    bias_exp: np.ndarray
    vth: np.ndarray | None  # None: non-spiking, the output is v
    v_init: np.ndarray
    v_reset: np.ndarray | None  # added after Lava's reset to 0; None when v_reset is 0
    reset: str
    compare: str  # ">" (Lava) or ">=" (Sinabs, Rockpool)
    spikes_per_step: str  # "one", or "many": a graded spike of floor(v / threshold)
    delay_input: bool  # Norse's voltage-first CubaLIF: a_in one step older
    has_current: bool
    scale: float  # v_int = scale * v_float (2^6 s_N)

    # What `population_registers` reads, derived once; a compiled engine passes a tuple of the
    # same names, one neuron's values each.
    @property
    def spiking(self) -> bool:
        return self.vth is not None

    @property
    def bias(self) -> np.ndarray:
        return effective_bias(self.bias_mant, self.bias_exp)

    @property
    def threshold(self) -> np.ndarray:
        return _int(self.vth if self.vth is not None else NEVER) << VTH_SHIFT

    @property
    def reset_offset(self) -> np.ndarray:
        return _int(self.v_reset if self.v_reset is not None and self.reset == "zero" else 0)

    @property
    def subtracts(self) -> bool:
        return self.reset == "subtract"

    @property
    def fires_at_threshold(self) -> bool:
        return self.compare == ">="

    @property
    def many_spikes(self) -> bool:
        return self.spikes_per_step == "many"


@dataclass(frozen=True)
class FixedState:
    """A population's registers between steps (int32-range integers)."""

    u: np.ndarray  # Lava's current register
    v: np.ndarray
    s: np.ndarray  # last step's spikes (graded counts under "many")
    pending: np.ndarray  # delay_input: the a_in the next step integrates; else zeros


def initial_fixed_state(q: NeuronInts, shape: tuple[int, ...]) -> FixedState:
    """The state at t=0 for inputs of `shape` (e.g. with a leading batch dimension); one array per
    register, as callers may write into them."""
    u, s, pending = (np.zeros(shape, dtype=np.int64) for _ in range(3))
    return FixedState(u=u, v=np.zeros(shape, dtype=np.int64) + _int(q.v_init), s=s, pending=pending)


def neuron_step_fixed(a_in, state: FixedState, q: NeuronInts) -> tuple[np.ndarray, FixedState]:
    """One step of a population: (output, new state), int64; the output is s, or v if non-spiking.

    a_in is the synaptic input as Lava's Dense delivers it (already one step late). Extensions
    to `lif_step_fixed`: Norse's voltage-first CubaLIF integrates last step's current, which is
    the current-first order on a_in one step older, so a_in waits a step in `pending`; a non-zero
    v_reset is added where the neuron spiked, after Lava's reset to 0; a non-spiking population
    runs with the threshold NEVER.
    """
    _check_reset(q.reset)
    out, u, v, s, pending = population_registers(_int(a_in), _int(state.u), _int(state.v), _int(state.pending), q)
    return _int(out), FixedState(u=_int(u), v=_int(v), s=_int(s), pending=_int(pending))


def population_registers(a_in, u, v, pending, q):
    """`neuron_step_fixed`'s arithmetic on int64 values: (output, u, v, s, pending). q is a
    `NeuronInts`, or anything with the same attributes (one neuron's values, in compiled code)."""
    if q.delay_input:
        a_in, pending = pending, a_in
    s, u, v = lif_registers(a_in, u, v, q.du, q.dv, q.bias, q.threshold, q.subtracts,
                            q.fires_at_threshold, q.many_spikes)
    v = v + (s > 0) * q.reset_offset
    return (s if q.spiking else v), u, v, s, pending


def sign_mode_of(weights) -> str:
    """Lava's `determine_sign_mode`: all >= 0 (all zero too) is excitatory, all <= 0 inhibitory."""
    w = np.asarray(weights)
    if w.min() >= 0:
        return "excitatory"
    return "inhibitory" if w.max() <= 0 else "mixed"


def _check_sign_mode(sign_mode: str) -> None:
    if sign_mode not in SIGN_MODES:
        raise OptionsError(f"sign mode must be one of {SIGN_MODES}, got '{sign_mode}'")


def clip_weights(weights, sign_mode: str) -> np.ndarray:
    """Lava's `clip_weights(num_bits=8)`: mixed to [-256, 255], excitatory to [0, 255],
    inhibitory to [-255, 0]. Dense applies it before truncation."""
    _check_sign_mode(sign_mode)
    full = 1 << WEIGHT_BITS
    low = {"mixed": -full, "excitatory": 0, "inhibitory": -(full - 1)}[sign_mode]
    high = 0 if sign_mode == "inhibitory" else full - 1
    return np.clip(_int(weights), low, high)


def truncate_weights(weights, sign_mode: str, num_weight_bits: int = WEIGHT_BITS) -> np.ndarray:
    """Lava's `truncate_weights`: zero the 8 - num_weight_bits (+1 if mixed) low bits.

    Mixed weights spend a bit on the sign, so even at 8 bits their LSB is dropped (9 keeps it, as
    netx's rescaled weights do). The shift rounds towards -inf, except for inhibitory weights, which
    are negated first (towards 0).
    """
    _check_sign_mode(sign_mode)
    shift = WEIGHT_BITS - num_weight_bits + (sign_mode == "mixed")
    if num_weight_bits < 1 or shift < 0:
        raise OptionsError(f"num_weight_bits must be in [1, {WEIGHT_BITS}] ({WEIGHT_BITS + 1} for mixed signs), "
                           f"got {num_weight_bits}")
    sign = -1 if sign_mode == "inhibitory" else 1
    return sign * ((sign * _int(weights) >> shift) << shift)


def effective_weights(weights, sign_mode: str | None = None,
                      num_weight_bits: int = WEIGHT_BITS) -> np.ndarray:
    """The weights Lava's Dense actually multiplies with: clipped, then truncated. The sign
    mode defaults, as in Lava, to `sign_mode_of` the weights as given."""
    mode = sign_mode or sign_mode_of(weights)
    return truncate_weights(clip_weights(weights, mode), mode, num_weight_bits)


def dense_fixed(weights, spikes, weight_exp: int = 0, num_weight_bits: int = WEIGHT_BITS,
                sign_mode: str | None = None, num_message_bits: int = 0) -> np.ndarray:
    """a_out of Lava's `PyDenseModelBitAcc` for input `spikes` (..., n_in); weights (n_out, n_in).

    num_message_bits=0: binary, any non-zero input is a spike; >0: graded, an int32 dot
    product. The sum is shifted by weight_exp after accumulation (a negative exponent is an
    arithmetic right shift of the sum, rounding towards -inf), then sent on an int32 port.
    Lava emits it one step later; the caller applies that delay.
    """
    w = effective_weights(weights, sign_mode, num_weight_bits)
    s = _int(spikes)
    if num_message_bits > 0:
        acc = wrap_signed(s @ w.T, CHANNEL_BITS)
    else:
        acc = (s != 0).astype(np.int64) @ w.T
    acc = acc << weight_exp if weight_exp > 0 else acc >> -weight_exp
    return wrap_signed(acc, CHANNEL_BITS)


def conv_output_fixed(acc) -> np.ndarray:
    """What `PyConvModelFixed` does after its convolution: wrap to 24-bit two's complement. Apply it
    to a simulator's own exact integer convolution. Lava's fixed conv does nothing else (no weight
    clipping/truncation; weight_exp and num_weight_bits ignored). Its conventions: (X, Y, C) layout,
    weights (out, kx, ky, in), a true convolution (kernel flipped relative to torch's conv2d),
    computed in float32 (exact while every sum stays below 2^24), then cast to int32. Like Dense,
    it emits the result one step later."""
    return wrap_signed(acc, CONV_OUT_BITS)
