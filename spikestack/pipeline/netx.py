"""Loihi 2's deployment format: `export_netx` (a graph -> a lava-dl netx file, as loihi mode runs it),
`verify_netx` (lava-dl's own run of the file against loihi mode) and `import_netx` (a netx file ->
a .nir graph whose loihi mode runs the file's integers). docs/netx.md has the mapping."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spikestack.backends.netx import NetxLayer, find_lava_dl, plan_layers, read_netx, run_lava_dl, write_netx
from spikestack.energy import check_fit, load_profile
from spikestack.errors import ChipError, DataError, OptionsError, SpikestackError
from spikestack.ir import load_graph, lower_graph, resolve_options
from spikestack.ir.quantise import DEFAULT_HEADROOM_BITS, QuantisedProgram, quantise_program
from spikestack.outputs import check_outputs
from spikestack.pipeline.stages import GraphSource, graph_path

NETX_CHIP = "loihi2"  # the chip a netx file is compiled for: its per-core limits bound every layer


@dataclass(frozen=True)
class NetxExport:
    path: Path | None
    quantised: QuantisedProgram  # what loihi mode runs, and the file holds
    layers: list[NetxLayer]


def netx_options(options: dict) -> dict:
    """Lowering options with `fixed_point="netx"`, refusing another format given explicitly."""
    if options.get("fixed_point") not in (None, "netx"):
        raise OptionsError(f"a netx file holds netx's integers; fixed_point={options['fixed_point']!r} cannot be exported")
    return {**options, "fixed_point": "netx"}


def quantise_for_netx(graph: GraphSource, preset: str | None = None,
                      headroom_bits: int | dict = DEFAULT_HEADROOM_BITS, **options) -> QuantisedProgram:
    """Lower with `fixed_point="netx"` (`netx_options`) and quantise."""
    built = load_graph(graph, preset)
    program = lower_graph(built, resolve_options(built.metadata, preset=preset, **netx_options(options)))
    return quantise_program(program, headroom_bits)[0]


def netx_layers(quantised: QuantisedProgram) -> list[NetxLayer]:
    """The file's layers, once the network is known to fit one Loihi 2 chip (the first limit it breaks
    otherwise, naming the layer)."""
    problems = check_fit(quantised.program, load_profile(NETX_CHIP))
    if problems:
        raise ChipError(f"too big for a {NETX_CHIP} chip: {problems[0]}")
    return plan_layers(quantised)


def export_netx(graph: GraphSource, out: str | os.PathLike | None, preset: str | None = None,
                headroom_bits: int | dict = DEFAULT_HEADROOM_BITS, **options) -> NetxExport:
    """Quantise as loihi mode does with netx's integers, check the chip and the format, then write
    `out` atomically (nothing is written when any check refuses)."""
    if out is not None:
        check_outputs({"--out": out}, {"GRAPH": graph_path(graph)})
    quantised = quantise_for_netx(graph, preset, headroom_bits, **options)
    layers = netx_layers(quantised)
    path = write_netx(layers, out, source=str(graph_path(graph) or "")) if out is not None else None
    return NetxExport(path, quantised, layers)


def verify_netx(export: NetxExport, x: np.ndarray, python: str | os.PathLike | None = None) -> dict:
    """Run the written file in lava-dl (netx.hdf5.Network, Lava fixed_pt) on spikes x (T, B, *input)
    and compare every layer's spikes with loihi mode on the same integers: status "identical",
    "different" (with the first step, sample and layer that differ) or "not checked" (and why)."""
    from spikestack.simulators import simulate

    shape = tuple(export.quantised.program.ops[0].out_shape)
    if x.ndim < 3 or tuple(x.shape[2:]) != shape or not np.isin(x, (0, 1)).all():
        raise DataError(f"lava-dl's check takes 0/1 spikes (T, B, {', '.join(map(str, shape))}); got an array of "
                        f"shape {x.shape}{'' if np.isin(x, (0, 1)).all() else ' with values other than 0 and 1'}")
    entry = {"tool": "lava-dl 0.6.0 netx.hdf5.Network, Lava fixed_pt", "steps": int(x.shape[0]),
             "samples": int(x.shape[1])}
    side, why = (Path(python), "") if python is not None else find_lava_dl()
    if side is None:
        return {**entry, "status": "not checked", "why": why}
    theirs, _ = run_lava_dl(export.path, x, side)
    neurons = [layer for layer in export.layers if layer.neuron is not None]  # netx builds one block for each
    if len(theirs) != len(neurons):
        return {**entry, "status": "different", "why": f"lava-dl built {len(theirs)} layers, the file has {len(neurons)}"}
    ours = simulate(export.quantised, x, mode="loihi", record=[layer.node for layer in neurons])
    for step in range(x.shape[0]):
        for layer, lava in zip(neurons, theirs):
            mine = ours.recordings[layer.node]["s"][step].astype(np.int8)
            if not np.array_equal(mine, lava[step]):
                sample = next(b for b in range(mine.shape[0]) if not np.array_equal(mine[b], lava[step, b]))
                return {**entry, "status": "different",
                        "first_difference": {"step": step, "sample": sample, "layer": layer.node,
                                             "ours": int(mine[sample].sum()), "lava_dl": int(lava[step, sample].sum())}}
    return {**entry, "status": "identical", "spikes": int(sum(int(a.sum()) for a in theirs)),
            "layer_spikes": {layer.node: int(a.sum()) for layer, a in zip(neurons, theirs)}}


def import_netx(path: str | os.PathLike, out: str | os.PathLike, input_shape: tuple[int, ...] | None = None) -> Path:
    """Read a netx file (ours or lava-dl's SLAYER exporter's) and write it as a .nir graph;
    `input_shape` for a conv file without an input layer (`read_netx`)."""
    from spikestack.ir.io import write_nir

    check_outputs({"--out": out}, {"NETX": path})
    graph = read_netx(path, input_shape)
    try:
        load_graph(graph)  # shapes and parameters checked as for any graph: a file that lies is refused here
    except SpikestackError as exc:
        raise type(exc)(f"{path}: {exc}") from None
    return write_nir(graph, out)
