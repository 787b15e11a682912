"""The commands on a NIR graph (info, run, export, map, energy, deploy), and demo and chips.

Each parses its arguments, calls one public function (`spikestack.pipeline` or a stage) and prints;
the library is imported inside the command, when it runs, so `spikestack --help` stays fast.
`GRAPH_COMMANDS` is what `spikestack.cli` registers, in the order of `spikestack --help`.
"""

from __future__ import annotations

import argparse
import json

from spikestack.cli.arguments import (COUNT, NATURAL, POSITIVE, STATS_FORMATS, Command, add_lowering_arguments,
                                      add_progress_argument, lowering_options, wants_progress)


def _info_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("graph", help="a .nir file")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _info(args: argparse.Namespace) -> int:
    from spikestack.pipeline import info

    description = info(args.graph)
    if args.json:
        print(json.dumps(description, indent=2))
    else:
        from spikestack.ir.info import format_description

        print(format_description(description))
    return 0


def _run_args(p: argparse.ArgumentParser) -> None:
    add_lowering_arguments(p)
    p.add_argument("--input", required=True, help="time-major input (T, B, *input_shape) as .npy")
    p.add_argument("--backend", choices=["sim", "lava"], default="sim")
    p.add_argument("--mode", choices=["float", "loihi", "fixed"], default="float")
    p.add_argument("--record", nargs="*", default=[], metavar="NODE", help="nodes whose state to record")
    p.add_argument("--out", required=True, help="outputs and recordings (.npz)")
    p.add_argument("--stats", help="operation counts per node and step (.json)")
    p.add_argument("--format", choices=STATS_FORMATS, default=STATS_FORMATS[0],
                   help="--stats as our counts (default) or NeuroBench 2.3.0's metrics (docs/energy.md)")
    add_progress_argument(p)


def _run(args: argparse.Namespace) -> int:
    from spikestack.pipeline import check_run_paths, load_input, load_program, run_program, save_run

    # before anything runs: a refusal writes nothing
    check_run_paths(args.graph, args.input, args.out, args.stats, args.format)
    program = load_program(args.graph, **lowering_options(args))
    run = run_program(program, load_input(args.input), args.backend, args.mode, tuple(args.record),
                      progress=wants_progress(args))
    save_run(run, args.out, args.stats, program, args.format)
    counts = run.counts
    summary = f", {counts.total('synaptic_events')} synaptic events" if counts is not None else ""
    print(f"ran {args.graph} on {run.backend} ({run.mode}){summary}; wrote {args.out}")
    return 0


def _export_args(p: argparse.ArgumentParser) -> None:
    add_lowering_arguments(p)
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--for", dest="target", choices=["snntorch", "norse", "sinabs", "rockpool"],
                        help="the library whose own importer and runtime must run the file as we do")
    target.add_argument("--to", dest="format", choices=["netx"],
                        help="netx: Loihi 2's lava-dl HDF5 format, with the integers loihi mode runs (docs/netx.md)")
    p.add_argument("--out", required=True, help="the .nir (--for) or .net (--to netx) file to write")
    p.add_argument("--verify", metavar="INPUT.npy",
                   help="--to netx: run the file in lava-dl on these spikes (T, B, *input) and compare with loihi mode")


def _export(args: argparse.Namespace) -> int:
    if args.format == "netx":
        return _export_netx(args)
    if args.verify:
        from spikestack.errors import OptionsError

        raise OptionsError("--verify goes with --to netx")
    from spikestack.pipeline import export_for

    export_for(args.graph, args.target, args.out, **lowering_options(args))
    print(f"wrote {args.out}: {args.graph} in the conventions of {args.target}'s importer")
    return 0


def _export_netx(args: argparse.Namespace) -> int:
    from spikestack.pipeline import export_netx, load_input, verify_netx
    from spikestack.report import describe_netx

    x = load_input(args.verify) if args.verify else None  # a bad input fails before anything is written
    export = export_netx(args.graph, args.out, **lowering_options(args))
    kinds = ", ".join(layer.kind for layer in export.layers)
    print(f"wrote {args.out}: {len(export.layers)} netx layers ({kinds}) with the integers loihi mode runs")
    if x is not None:
        result = verify_netx(export, x)
        print(describe_netx(result))
        return 0 if result["status"] != "different" else 1
    return 0


def _import_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("netx", metavar="NETX", help="a lava-dl netx .net/.h5 file (SLAYER's export_hdf5, or ours)")
    p.add_argument("--out", required=True, help="the .nir file to write (loihi mode runs the file's integers)")
    p.add_argument("--input-shape", type=NATURAL, nargs="+", metavar="N",
                   help="C H W of a conv network's input where the file has no input layer (SLAYER writes none)")


def _import(args: argparse.Namespace) -> int:
    from spikestack.pipeline import import_netx

    path = import_netx(args.netx, args.out, tuple(args.input_shape) if args.input_shape else None)
    print(f"wrote {path}: {args.netx} as NIR (preset netx, integer scale 1); run it with --mode loihi to get "
          "lava-dl's spikes")
    return 0


def _map_args(p: argparse.ArgumentParser) -> None:
    add_lowering_arguments(p)
    p.add_argument("--chip", default="loihi2", help="profile name or YAML path")
    p.add_argument("--weight-bits", type=COUNT, help="bits per synapse (default: the chip's)")
    p.add_argument("--json", action="store_true")


def _map(args: argparse.Namespace) -> int:
    from spikestack.pipeline import map_graph

    placement = map_graph(args.graph, args.chip, weight_bits=args.weight_bits, **lowering_options(args))
    if args.json:
        print(json.dumps(placement, indent=2))
        return 0
    print(f"{placement['chip']}: {placement['cores_used']} cores on a {placement['grid'][0]}x{placement['grid'][1]} mesh")
    for core in placement["cores"]:
        print(f"  core {core['index']:>3} {core['layer']:<12} neurons {core['neurons']:>6} synapses {core['synapses']:>8} "
              f"in-axons {core['input_axons']:>5} out-axons {core['output_axons']:>5}")
    return 0


def _energy_args(p: argparse.ArgumentParser) -> None:
    add_lowering_arguments(p)
    p.add_argument("--input", required=True, help="time-major input (T, B, *input_shape) as .npy")
    p.add_argument("--chip", action="append", required=True, help="profile name or YAML path (repeat)")
    p.add_argument("--mode", choices=["float", "loihi"], default="float")
    p.add_argument("--dt-seconds", type=POSITIVE, help="seconds per step (default: dt, when in seconds)")
    p.add_argument("--out", default="out/energy")
    p.add_argument("--format", choices=STATS_FORMATS, default=STATS_FORMATS[0],
                   help="neurobench: also write the run's NeuroBench 2.3.0 metrics to --out/neurobench.json")


def _energy(args: argparse.Namespace) -> int:
    from spikestack.report import format_energy_markdown
    from spikestack.pipeline import energy, load_input

    report = energy(args.graph, load_input(args.input), args.chip, args.out, mode=args.mode,
                    dt_seconds=args.dt_seconds, input_path=args.input, stats_format=args.format,
                    **lowering_options(args))
    print(format_energy_markdown(report).split("\n## ")[0])
    extra = ", neurobench.json" if args.format == "neurobench" else ""
    print(f"wrote {args.out}/energy.json, energy.md{extra} and plots")
    return 0


def _deploy_args(p: argparse.ArgumentParser) -> None:
    add_lowering_arguments(p)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", help="time-major input (T, B, *input_shape) as .npy")
    source.add_argument("--dataset", help="digits, fashion-mnist or a directory of MNIST-layout IDX files: "
                                          "its test set, rate-coded, scored per backend")
    p.add_argument("--steps", type=COUNT, help="time steps per dataset sample (default 32)")
    p.add_argument("--limit", type=COUNT, help="first N samples only")
    p.add_argument("--chip", action="append", help="profile name or YAML path (repeat; default: every shipped chip)")
    p.add_argument("--backend", choices=["sim", "lava", "both"], default="both")
    p.add_argument("--samples", type=COUNT, default=3, help="samples to run on Lava (default 3)")
    p.add_argument("--dt-seconds", type=POSITIVE, help="seconds per step (default: dt, when in seconds)")
    p.add_argument("--seed", type=NATURAL, default=0, help="dataset split and rate-coding seed")
    p.add_argument("--out", required=True, help="directory for report.html, report.md, report.json")
    p.add_argument("--export", choices=["netx"], help="netx: loihi mode runs netx's integers and model.net (Loihi 2, "
                                                      "lava-dl) is written beside the report, verified by lava-dl")
    add_progress_argument(p)


def _deploy(args: argparse.Namespace) -> int:
    from spikestack.pipeline import deploy, load_input

    x = load_input(args.input) if args.input else None
    deploy(args.graph, args.out, x=x, dataset=args.dataset, steps=args.steps, limit=args.limit, chips=args.chip,
           backend=args.backend, samples=args.samples, dt_seconds=args.dt_seconds, seed=args.seed, echo=print,
           input_path=args.input, progress=wants_progress(args), export=args.export, **lowering_options(args))
    return 0


def _demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="out/demo", help="directory for the model and reports")
    p.add_argument("--seed", type=NATURAL, default=0)
    p.add_argument("--for", dest="target", choices=["netx"],
                   help="netx: train in netx's form and write model.net (Loihi 2) beside the report, checked by lava-dl")
    add_progress_argument(p)


def _demo(args: argparse.Namespace) -> int:
    from spikestack.pipeline import demo

    demo(out_dir=args.out, seed=args.seed, echo=print, progress=wants_progress(args), target=args.target)
    return 0


def _chips_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _chips(args: argparse.Namespace) -> int:
    from spikestack.pipeline import chips

    rows = chips()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        flag = " (estimated)" if row["estimated"] else ""
        print(f"{row['name']:<14} {row['kind']:<4} {row['description']}{flag}")
    return 0


GRAPH_COMMANDS: dict[str, Command] = {
    "info": Command("describe a NIR graph: nodes, shapes, sizes, recurrence", _info_args, _info),
    "run": Command("simulate a graph (or run it on Lava) on a .npy input", _run_args, _run),
    "export": Command("rewrite a graph in snnTorch's, Norse's, Sinabs' or Rockpool's NIR conventions, or as a "
                      "Loihi 2 netx file", _export_args, _export),
    "import": Command("read a lava-dl netx file (SLAYER's or ours) into a NIR graph", _import_args, _import),
    "map": Command("place a graph on a chip's cores and report the load", _map_args, _map),
    "energy": Command("energy and latency per inference on chips, from simulated counts", _energy_args, _energy),
    "deploy": Command("validate, map, simulate, run on Lava, compare, estimate energy per chip: one report",
                      _deploy_args, _deploy),
    "demo": Command("train a small SNN on digits, export it to NIR and deploy it (the same report)",
                    _demo_args, _demo),
    "chips": Command("list the shipped chip profiles", _chips_args, _chips),
}
