"""`lower_program`: a Program becomes a `LavaPlan` (plan.py), the Lava network described in plain numpy.

Each op is lowered by its role (`ir.primitives`, `LOWER_BY_ROLE`): every synapse operator becomes
one Lava connection process (synapses.py), every neuron operator a stock LIF or a `ProgramNeuron`
(neurons.py), a Threshold a neuron that remembers nothing (neurons.thresholds_as_neurons), the Input a
ring buffer, and a reshape (Flatten) a reshape of a Lava port. A role with no entry there is refused,
naming the node. Nothing here imports Lava: build.py instantiates the plan in the child process.

Modes: "float" (Lava's floating_pt models) and "loihi" (its bit-accurate fixed_pt models, running
the integers of `ir.quantise`): the simulator's names for the same two arithmetics.

Timing. Every Lava connection process delivers one step late (its output at step t is computed from
its input at t - 1), so a neuron k synapse layers deep first hears of the input at step k. In "loihi"
mode that is the behaviour to reproduce (the simulator's loihi mode delays every synapse op the same
way, also where paths of different depth meet), and the plan runs T steps as Lava would. In "float"
mode the simulator delivers within the step, so each view records `valid_from`, the Lava step that
carries the op's step-0 value; run.py runs T + max(valid_from) steps (the input padded with zeros)
and reads each output from its valid_from on. Inputs of one node that arrive at different steps
(a residual block's shortcut and branch) are delayed to the latest of them (align.py). A neuron
stays frozen until its inputs arrive, so its leak, bias and initial potential start then. A
recurrent (back) edge carries the Program's one-step delay; Lava's synapse on that edge provides
exactly that step, so a loop through one synapse layer needs no correction, and a loop through more
is refused (its extra steps cannot be taken out).

Delays. Lava delays spikes only inside a DelayDense, which delivers after 1 + d steps. A Delay op is
therefore folded into the weight matrix next to it (a dense or elementwise synapse: Affine, Linear,
Scale; before: per input column; after: per output row), whose DelayDense then takes exactly the
one synapse step the op had anyway; in float mode a Delay with no such neighbour gets an identity
relay of its own (one more layer).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from spikestack.backends.lava import neurons
from spikestack.backends.lava.align import Aligner, relay
from spikestack.backends.lava.layout import lava_layout, to_lava
from spikestack.backends.lava.plan import LavaNode, LavaPlan, View
from spikestack.backends.lava.synapses import synapse_spec, takes_delays
from spikestack.errors import OptionsError, UnsupportedError
from spikestack.ir.primitives import Role, kinds_with
from spikestack.ir.program import Op, Program
from spikestack.ir.quantise import QuantisedProgram

MODES = ("float", "loihi")


class _Lowering:
    def __init__(self, program: Program, mode: str, qprog: QuantisedProgram | None, binary_input: bool):
        self.program, self.mode, self.q, self.binary_input = program, mode, qprog, binary_input
        self.obstacles = {op.name: neurons.stock_lif_obstacle(op, program)
                          for op in program.neuron_ops if mode == "float"}
        self.stock = {name for name, obstacle in self.obstacles.items() if obstacle is None}
        self.nodes: dict[str, LavaNode] = {}
        self.views: dict[str, View] = {}
        self.inputs: dict[str, dict[str, View]] = {}  # per op, its forward sources' views as wired (aligned)
        self.aligner = Aligner(program, self.nodes, self.views)

    def graded(self, name: str) -> bool:
        op = self.program.op(name)
        if op.primitive.is_input:
            return not self.binary_input
        if op.primitive.role in (Role.RESHAPE, Role.DELAY):
            return self.graded(op.sources[0].name)
        return not (op.is_neuron and op.params.emits == "binary")

    def forward_views(self, op: Op) -> tuple[list[View], int]:
        """The views of op's forward sources as they will be wired (in float mode delayed to arrive
        together, align.py), and the Lava step at which op's input port holds simulator step 0."""
        known = [(s.name, self.views[s.name]) for s in op.sources if s.delay == 0]
        for _, v in known[1:]:
            if v.shape != known[0][1].shape or not np.array_equal(v.order, known[0][1].order):
                raise UnsupportedError("inputs arrive in different Lava layouts", node=op.name)
        if self.mode == "float":
            views, arrival = self.aligner.align(op, known)
        else:  # Lava's own timing: what arrives when it arrives, as the simulator's loihi mode has it
            if len(known) > 1 and any(v.delays is not None for _, v in known):
                raise UnsupportedError("in loihi mode a Delay cannot feed a synapse that sums it with other "
                                       "inputs (its DelayDense would delay them all)", node=op.name)
            views, arrival = [self.connected(op, src, v) for src, v in known], 0
        self.inputs[op.name] = {src: v for (src, _), v in zip(known, views)}
        return views, arrival

    def lower(self) -> None:
        for op in self.program.ops:
            LOWER_BY_ROLE[op.primitive.role](self, op)

    def source(self, op: Op) -> None:
        """The Input: a ring buffer that sends the samples."""
        shape, order = lava_layout(op.out_shape)
        self.nodes[op.name] = LavaNode(op.name, "source", dict(shape=shape))
        self.views[op.name] = View(op.name, "s_out", shape, order, 0, not self.binary_input)

    def pass_on(self, op: Op) -> None:
        """An Output or a reshape: its source's view, a reshape flat (Lava reshapes the port it
        connects to), an Output as it is. No process of its own."""
        v = self.views[op.sources[0].name]
        shape = (int(np.prod(v.shape)),) if op.primitive.role is Role.RESHAPE else v.shape
        self.views[op.name] = dataclasses.replace(v, shape=shape, bias=None if v.bias is None else v.bias.reshape(shape))

    def synapse(self, op: Op) -> None:
        views, arrival = self.forward_views(op)
        v = views[0]
        graded = len(op.sources) > 1 or any(self.graded(s.name) for s in op.sources)
        ints = self.q.synapses[op.name] if self.q is not None else None
        spec = synapse_spec(op, v.shape, v.order, graded, None, ints)
        consumers = self.program.consumers(op.name)
        target = consumers[0] if len(consumers) == 1 else None
        if target in self.stock:
            fold = neurons.fold_for(self.program.op(target), op, spec.shape, spec.order)
            spec = synapse_spec(op, v.shape, v.order, graded, fold, ints)
        kind, params = spec.kind, spec.params
        if v.delays is not None:  # a Delay op right before: each input column waits its element's steps
            kind = "delay_dense"
            params = {**params, "delays": np.broadcast_to(v.delays, params["weights"].shape).astype(np.int64)}
        valid_from = arrival + 1 if self.mode == "float" else v.valid_from + 1
        self.nodes[op.name] = LavaNode(op.name, kind, params)
        self.views[op.name] = View(op.name, "a_out", spec.shape, spec.order, valid_from, True, spec.bias)

    def delay(self, op: Op) -> None:
        """Lava delays inside a DelayDense only (1 + d steps, the 1 being every synapse's latency)."""
        src = op.sources[0]
        v = self.views[src.name] if src.delay == 0 else None
        if v is None or v.delays is not None or v.bias is not None:
            raise UnsupportedError("a Delay must follow a forward edge without another Delay or a bias on Lava", node=op.name)
        d = to_lava(op.params.steps, op.in_shape, v.shape, v.order).reshape(-1).astype(np.int64)
        node = self.nodes.get(v.proc)
        if v.port == "a_out" and node.kind in ("dense", "sparse") and self.program.consumers(src.name) == (op.name,):
            node.kind = "delay_dense"  # right after a Dense: each output row waits its element's steps
            node.params["delays"] = np.repeat(d[:, None], node.params["weights"].shape[1], axis=1)
            self.views[op.name] = v
        elif all(takes_delays(self.program.op(c)) for c in self.program.consumers(op.name)):
            self.views[op.name] = dataclasses.replace(v, delays=d)
        elif self.mode == "float":  # an identity relay of its own: one synapse step plus the Delay's
            self.views[op.name] = relay(self.nodes, op.name, v, 1, d)
        else:
            raise UnsupportedError("in loihi mode a Delay must be next to an Affine, Linear or Scale, "
                                   "whose DelayDense applies it (the simulator's loihi mode adds no synapse step)", node=op.name)

    def neuron(self, op: Op) -> None:
        fwd, start = self.forward_views(op)
        v = fwd[0]
        if self.mode == "float":
            note = self.obstacles[op.name]
            params = neurons.custom_params(op, v.shape, v.order, start) if note else neurons.stock_lif_params(op, v.shape)
        else:
            q = self.q.neurons[op.name]
            note = neurons.stock_lif_fixed_obstacle(op, q, self.q)
            if note is None and any(f.bias is not None for f in fwd):
                note = "an input's bias, which Lava's connection processes cannot add"
            params = (neurons.custom_fixed_params if note else neurons.stock_lif_fixed_params)(op, q, v.shape, v.order)
        self.nodes[op.name] = LavaNode(op.name, "neuron" if note else "lif", params, note=note or "")
        self.views[op.name] = View(op.name, "s_out", v.shape, v.order, start, not op.params.spiking)

    def connect(self) -> None:
        """Wire every Program edge into a connection or a neuron; check float-mode loops."""
        for op in self.program.ops:
            synapse = op.primitive.is_synapse
            if not synapse and not op.is_neuron:
                continue
            expected = self.views[op.name].valid_from - synapse
            for src in op.sources:
                if src.delay == 0:
                    v = self.inputs[op.name][src.name]
                else:  # a back edge: its source comes later in the Program, so it is wired only now
                    v = self.connected(op, src.name, self.views[src.name])
                    if self.mode == "float" and v.valid_from - src.delay != expected:
                        raise UnsupportedError(
                            f"the loop back from '{src.name}' arrives at Lava step {v.valid_from - src.delay}, "
                            f"{v.valid_from - src.delay - expected} after this node's other inputs: every Lava synapse "
                            "layer in a loop adds a step that float mode cannot take out (the simulator closes a loop "
                            "in one step)", node=op.name)
                if v.bias is not None:
                    if self.nodes[op.name].kind != "neuron":
                        raise UnsupportedError(f"the bias of '{src.name}' must feed a ProgramNeuron directly on Lava", node=op.name)
                    # Part of the synapse's output, which before the first step is its response to no
                    # input (the simulator's convention): so the bias counts from the neuron's first step.
                    first = v.valid_from - src.delay if self.mode == "float" else 0
                    self.nodes[op.name].params["biases"] += ((v.bias, first),)
                self.nodes[op.name].inputs.append(v)

    def connected(self, op: Op, src: str, v: View) -> View:
        """Spikes straight into a neuron: Lava needs a connection process in between (float: a relay)."""
        if not (op.is_neuron and v.port == "s_out"):
            return v
        if self.mode == "loihi":
            raise UnsupportedError(f"input from '{src}' has no synapse op, which Lava needs in loihi mode", node=op.name)
        return relay(self.nodes, self.aligner.relay_name(op, src), v, 1)

    def mark_records(self, record: tuple[str, ...], count: bool) -> None:
        read = set(self.program.outputs) | {n for n in record if not self.program.op(n).is_neuron}
        if count:  # every op's output, from which ir.counts counts what each op received and sent
            read |= {op.name for op in self.program.ops if not op.primitive.is_input and self.views[op.name].delays is None}
        for name in read:
            self.nodes[self.views[name].proc].record.add(trace_key(self.views, self.nodes, name))
        for name in record:
            if self.program.op(name).is_neuron:
                self.nodes[name].record.update(trace_keys(self.program.op(name)))


# How each role becomes Lava processes; an op of any other role has no Lava lowering.
LOWER_BY_ROLE = {Role.INPUT: _Lowering.source, Role.OUTPUT: _Lowering.pass_on, Role.RESHAPE: _Lowering.pass_on,
                 Role.DELAY: _Lowering.delay, Role.SYNAPSE: _Lowering.synapse, Role.NEURON: _Lowering.neuron,
                 Role.THRESHOLD: _Lowering.neuron}  # as a memoryless neuron (neurons.thresholds_as_neurons)
# The NIR types the backend lowers, for messages and users who ask (derived from the roles above).
SUPPORTED_PRIMITIVES = frozenset(kinds_with(lambda p: p.role in LOWER_BY_ROLE))


def trace_key(views: dict[str, View], nodes: dict[str, LavaNode], name: str) -> str:
    """Which trace of its Lava process holds op `name`'s output (its view)."""
    v = views[name]
    if v.delays is not None:
        raise OptionsError(f"'{name}' is a Delay applied inside the next DelayDense: it has no output on Lava to read")
    return ("v" if v.graded else "s") if nodes[v.proc].kind in ("lif", "neuron") else "out"


def trace_keys(op: Op) -> set[str]:
    """What a recorded neuron reports, as the simulator does: v; i if it has a current (in fixed point
    Lava's u register; without a current u is only this step's input); s if it spikes."""
    keys = {"v"}
    if op.params.has_current:
        keys.add("i")
    if op.params.spiking:
        keys.add("s")
    return keys


def lower_program(program: Program, mode: str, n_steps: int, record: tuple[str, ...] = (), count: bool = False,
                  binary_input: bool = True, qprog: QuantisedProgram | None = None) -> LavaPlan:
    """Describe the Lava network for `program` and inputs of `n_steps` steps.

    mode "loihi" needs `qprog`, the program's integers from `ir.quantise.quantise_program`.
    Raises UnsupportedError naming the node for what Lava cannot run (or not align, in float mode).
    """
    if mode not in MODES:
        raise OptionsError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    if len(program.inputs) != 1:
        raise UnsupportedError(f"the Lava backend takes one Input node, this graph has {len(program.inputs)}")
    for op in program.ops:
        if op.primitive.role not in LOWER_BY_ROLE:
            raise UnsupportedError(f"primitive '{op.kind}' is not supported by the Lava backend", node=op.name)
    if mode == "loihi" and qprog is None:
        raise OptionsError("loihi mode needs the quantised program (ir.quantise.quantise_program)")
    program, qprog = neurons.thresholds_as_neurons(program, qprog if mode == "loihi" else None, binary_input)
    lowering = _Lowering(program, mode, qprog, binary_input)
    lowering.lower()
    lowering.connect()
    lowering.mark_records(tuple(record), count)
    read = set(program.outputs) | set(record) | ({op.name for op in program.ops} if count else set())
    extra = max(lowering.views[n].valid_from for n in read) if mode == "float" else 0
    plan = LavaPlan(mode, lowering.nodes, lowering.views, program.inputs[0], tuple(program.outputs), n_steps + extra,
                    lowering.aligner.alignment)
    for node in plan.nodes.values():
        if node.kind == "neuron":  # its step counter restarts with every sample
            node.params["n_steps"] = plan.n_steps
    return plan
