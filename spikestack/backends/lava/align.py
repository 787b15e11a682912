"""Float mode: delay the inputs of a node that reach it through fewer Lava synapse layers than others.

Every Lava connection process delivers one step late, and the simulator's float mode (NIR's
semantics, the reference) delivers within the step. Float mode therefore reads each op's output
from `View.valid_from`, the Lava step that carries its step-0 value (lower.py). A node whose inputs
cross different numbers of synapse layers, a residual block's branch and its shortcut for instance,
would sum values of different simulator steps. `Aligner.align` finds the latest arrival among a
node's inputs and delays every earlier one by the difference, so that all carry the same simulator
step at the node:

- into the synapse that made it, when that synapse feeds this node alone (a Dense or Sparse becomes
  a DelayDense or DelaySparse whose every weight waits the missing steps; no process is added and
  the synapse's output is read that much later);
- else through a relay, an identity DelaySparse (Sparse for one step) on that edge alone, which
  delivers 1 + delay steps late: a neuron's spikes straight into another neuron get this relay of
  one step anyway, as Lava needs a connection process between two neurons.

Identity weights are exact in float (one product x * 1.0 per output), so aligned runs keep the
spike-for-spike equality with the simulator. Loihi mode (fixed_pt) keeps Lava's own timing, which
the simulator's loihi mode reproduces, misaligned paths included, and inserts nothing. A back edge
cannot be aligned this way (delaying the node's other inputs delays the loop too); lower.py checks it.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from spikestack.backends.lava.plan import LavaNode, View
from spikestack.backends.lava.synapses import GRADED_BITS
from spikestack.errors import UnsupportedError
from spikestack.ir.program import Op, Program

# Connection processes that can take a delay per weight: kind -> its delayed kind
DELAYABLE = {"dense": "delay_dense", "sparse": "delay_sparse", "delay_dense": "delay_dense",
             "delay_sparse": "delay_sparse"}


class Aligner:
    """Adds the delays (in place, to the lowering's `nodes` and `views`) and keeps a record of them."""

    def __init__(self, program: Program, nodes: dict[str, LavaNode], views: dict[str, View]) -> None:
        self.program, self.nodes, self.views = program, nodes, views
        self.alignment: dict[str, dict[str, int]] = {}  # node -> source -> steps added

    @staticmethod
    def needs_connection(op: Op, view: View, n_inputs: int) -> bool:
        """A neuron's spikes into a neuron need a connection process; so does a Delay op's view
        (applied by the next DelayDense) into a synapse that sums it with other inputs."""
        return (op.is_neuron and view.port == "s_out") or (view.delays is not None and n_inputs > 1)

    def align(self, op: Op, inputs: list[tuple[str, View]]) -> tuple[list[View], int]:
        """The forward inputs (source name, view) of `op`, each delayed to the latest arrival among
        them, and that arrival: the Lava step at which op's input port holds simulator step 0."""
        n = len(inputs)
        earliest = [v.valid_from + self.needs_connection(op, v, n) for _, v in inputs]
        target = max(earliest)
        aligned = []
        for (src, view), first in zip(inputs, earliest):
            extra = target - first
            if extra:
                self.alignment.setdefault(op.name, {})[src] = extra
            if self.needs_connection(op, view, n) or extra:
                view = self.delay(op, src, view, target - view.valid_from)
            aligned.append(view)
        return aligned, target

    def delay(self, op: Op, src: str, view: View, steps: int) -> View:
        """`view` arriving `steps` (>= 1) later: folded into its own synapse where it can be, else relayed."""
        node = self.nodes.get(view.proc)
        if (view.port == "a_out" and view.delays is None and view.proc == src and node is not None
                and node.kind in DELAYABLE and self.program.op(src).primitive.is_synapse
                and self.program.consumers(src) == (op.name,)):
            shape = np.shape(node.params["weights"])
            node.params["delays"] = node.params.get("delays", np.zeros(shape, dtype=np.int64)) + steps
            node.kind = DELAYABLE[node.kind]
            self.views[src] = view = dataclasses.replace(view, valid_from=view.valid_from + steps)
            return view
        return relay(self.nodes, self.relay_name(op, src), view, steps)

    def relay_name(self, op: Op, src: str) -> str:
        """The relay on the edge src -> op: a name no op has, as every Lava process needs its own."""
        name = f"{op.name}.from.{src}"
        if name in self.nodes or any(o.name == name for o in self.program.ops):
            raise UnsupportedError(f"the relay from '{src}' would be named '{name}', which a node already is", node=op.name)
        return name


def relay(nodes: dict[str, LavaNode], name: str, view: View, steps: int, delays: np.ndarray | None = None) -> View:
    """An identity connection `name` that delivers `view` `steps` (>= 1) late, plus per element the
    view's own Delay-op steps (or `delays`, Lava order); returns what it sends."""
    extra = view.delays if view.delays is not None else delays
    size = int(np.prod(view.shape))
    per_element = np.full(size, steps, dtype=np.int64) + (0 if extra is None else np.asarray(extra, np.int64).reshape(-1))
    params = dict(steps=per_element, num_message_bits=GRADED_BITS if view.graded else 0)
    nodes[name] = LavaNode(name, "relay", params, [dataclasses.replace(view, delays=None)])
    return dataclasses.replace(view, proc=name, port="a_out", valid_from=view.valid_from + steps, delays=None)
