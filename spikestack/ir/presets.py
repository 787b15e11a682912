"""Exporter presets: what each peer library's NIR files mean, read from its source (issue 16).

NIR carries no dt and no reset mode, and each exporter encodes time its own way (BRIEF §2), so a
preset names the peer release its conventions were read from, the lowering options it fills in,
and the reading rules its files need. Each rule is documented with the peer source it comes from;
`docs/interop.md` has the tables, and `tests/peers/` checks every preset against the peer's own
exporter and runtime. A preset whose conventions changed between releases is versioned:
"norse" is the current release, "norse@1.0" the one before (the NIR paper's files).
"""

from __future__ import annotations

from dataclasses import dataclass, field

@dataclass(frozen=True)
class Preset:
    """One exporter's conventions.

    options: LoweringOptions fields the preset fills in (an explicit option still wins).
    current_input: how a CubaLIF's input x enters its current i (alpha_i = the current's decay):
        "euler": i <- alpha_i i + (dt / tau_syn) w_in x (NIR's ODE, forward Euler; snnTorch);
        "impulse": i <- alpha_i i + w_in x (Norse 1.1: i += x, then the voltage uses i);
        "decayed": i <- alpha_i (i + w_in x) (Rockpool's LIFTorch).
    tau_unit_dt: tau fields hold dt * tau (Norse 1.1.0's exporter): tau = field / dt.
    unscaled_input: NIR kinds whose input enters v as r x, not scaled by the leak's gain or dt
        (Sinabs' ExpLeak, norm_input=False by default: v <- alpha v + r x; Norse's IAFCell: v += x).
    voltage_input: "leak": the input enters v by the leak's gain, a r x + a v_leak (NIR's ODE);
        "rockpool": r holds tau e^(-dt/tau) / dt, a unit gain g = r dt / (tau e^(-dt/tau)) that the
        file must satisfy for the preset's dt; v <- alpha v + g x + v_leak (LIF, CubaLIF) and
        v <- alpha (v + g x) (LI), as Rockpool's modules step.
    start_at_leak: v starts at v_leak (leaky kinds) or v_reset (IF), as Norse's states do.
    max_tau: the largest time constant (in seconds) the preset believes a file; more means the file
        is probably from another release (Norse 1.0 wrote tau in seconds): refused with a pointer.
    zero_reset_before_decay: NIR kinds whose delayed zero reset acts before the decay, keeping this
        step's input, v <- alpha (s' ? v_reset : v) + gain x (snnTorch's Leaky), except a node in a
        two-node recurrence with an Affine/Linear (snnTorch's RLeaky, which resets after).
    extra_input_dim: "batch" where the exporter writes its tracing sample's batch of 1 into Input
        types, "batch or time" where it may write the time dimension too (Sinabs' plain layers):
        dropped where the file proves it extra (ir/intake.py, drop_tracing_dim_graph).
    file_omits: one line on what this exporter's files cannot tell us (printed when loading).
    sources: the peer source each convention was read from (file: function, release).
    """

    name: str
    release: str
    options: dict
    current_input: str = "euler"
    tau_unit_dt: bool = False
    extra_input_dim: str = ""
    unscaled_input: tuple[str, ...] = ()
    voltage_input: str = "leak"
    start_at_leak: bool = False
    max_tau: float | None = None
    zero_reset_before_decay: tuple[str, ...] = ()
    file_omits: str = ""
    sources: tuple[str, ...] = field(default=())


PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset(
        "norse", "1.1.0",
        dict(dt=1e-3, reset="zero", reset_timing="immediate", cuba_order="current_first", threshold=">"),
        current_input="impulse", tau_unit_dt=True, extra_input_dim="batch", unscaled_input=("IF",),
        start_at_leak=True, max_tau=1.0,
        sources=("norse/torch/functional/lif.py: lif_feed_forward_step (i_new = i + x; v uses i_new)",
                 "norse/torch/functional/iaf.py: iaf_feed_forward_step (v += x, no dt)",
                 "norse/torch/module/lif_box.py, leaky_integrator_box.py: states start at v_leak",
                 "norse/torch/utils/export_nir.py: _extract_norse_module (tau = dt / tau_mem_inv)"),
    ),
    Preset(
        "norse@1.0", "1.0",
        dict(dt=1e-3, reset="zero", reset_timing="immediate", cuba_order="voltage_first", threshold=">"),
        sources=("the NIR paper's lif_norse.nir (BRIEF §3): tau in seconds, r = 1",),
    ),
    Preset(
        "snntorch", "1.0.0",
        dict(dt=1e-4, reset="subtract", reset_timing="delayed", cuba_order="current_first", threshold=">"),
        extra_input_dim="batch", zero_reset_before_decay=("LIF",),
        file_omits="snnTorch's exporter does not write reset_mechanism: the snntorch preset runs its default "
                   "(subtract); pass --reset zero for reset_mechanism='zero'",
        sources=("snntorch/_neurons/leaky.py: Leaky._base_state_function, reset_delay=True",
                 "snntorch/_neurons/synaptic.py, rleaky.py: reset after the decay and the input",
                 "snntorch/export_nir.py: r = tau_mem / dt, w_in = tau_syn / dt, dt = 1e-4"),
    ),
    Preset(
        "sinabs", "3.1.3",
        dict(dt=1.0, reset="subtract", reset_timing="immediate", integration="exact", threshold=">=",
             spikes_per_step="many"),
        extra_input_dim="batch or time", unscaled_input=("LI",),
        file_omits="Sinabs' exporter writes neither the spike function, the reset, min_v_mem, norm_input nor "
                   "tau_syn: the sinabs preset assumes its defaults (MultiSpike at v >= threshold, subtractive "
                   "reset, no lower bound on v)",
        sources=("sinabs/layers/lif.py: LIF.forward (alpha = exp(-1/tau), input x (1 - alpha))",
                 "sinabs/layers/exp_leak.py: ExpLeak (norm_input=False: input unscaled)",
                 "sinabs/activation/spike_generation.py: MultiSpike (floor(v / threshold), v >= threshold)",
                 "sinabs/nir.py: _extract_sinabs_module"),
    ),
    Preset(
        "rockpool", "3.1.0",
        dict(dt=1e-3, reset="subtract", reset_timing="immediate", integration="exact", threshold=">=",
             spikes_per_step="many"),
        current_input="decayed", voltage_input="rockpool", extra_input_dim="batch",
        file_omits="Rockpool's exporter drops LIFTorch/LIFNeuronTorch biases and LIFTorch recurrent weights: "
                   "if the model had them, this file does not carry them",
        sources=("rockpool/nn/modules/torch/lif_torch.py: LIFBaseTorch.evolve (i <- beta (i + x), v <- alpha v + i + bias)",
                 "rockpool/nn/modules/torch/exp_syn_torch.py: ExpSynTorch.evolve (v <- beta (v + x))",
                 "rockpool/nn/modules/torch/nir.py: _extract_rockpool_module (r = tau exp(-dt/tau) / dt)"),
    ),
    Preset(
        "netx", "lava-dl 0.6.0",
        dict(dt=1.0, reset="zero", reset_timing="immediate", cuba_order="current_first", threshold=">",
             spikes_per_step="one", initial_potential=0.0, fixed_point="netx"),
        current_input="impulse", unscaled_input=("CubaLIF",),
        sources=("lava/lib/dl/netx/hdf5.py: Network.get_neuron_params (Lava's LIF: du = iDecay - 1, dv = vDecay, "
                 "vth = vThMant, bias_exp 6)",
                 "lava/lib/dl/slayer/neuron/cuba.py: Neuron (u <- (1 - alpha_u) u + x; v <- (1 - alpha_v) v + u + "
                 "bias; v > theta resets v to 0)",
                 "spikestack/backends/netx/read.py: what `spikestack import` writes"),
    ),
    Preset("spikestack", "", {}, sources=("our exporter's graph metadata (ir/options.py: options_metadata)",)),
)}


def preset_rules(name: str | None) -> Preset:
    """The reading rules lowering applies: the named preset's, or, without one, NIR's own (the
    spikestack preset's, which has none: its options come from graph metadata)."""
    return PRESETS[name or "spikestack"]
