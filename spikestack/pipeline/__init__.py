"""Jobs that call several stages in a row: the only package that does (docs/architecture.md).

`stages`: the single-stage jobs behind the CLI (info, run, map, energy, chips) and `predict`;
`inputs`: `.npy` inputs, read header first, and the finite-values check of every run;
`deployment`: `deploy`, any NIR file through every stage into one report; `demonstration`: `demo`;
`evaluation`: `evaluate_chunk`, a run of dataset samples encoded, simulated, scored and estimated
per chip (the job of each `sweep` task);
`training`: `spikestack train <method>` and `convert`. `training` loads torch, so it is imported on
first use (PEP 562): the other commands stay as fast to start as before.
"""

from importlib import import_module

from spikestack.pipeline.deployment import DEPLOY_BACKENDS, DeployInput, deploy, deploy_input, simulate_all
from spikestack.pipeline.demonstration import demo
from spikestack.pipeline.evaluation import ChunkEvaluation, evaluate_chunk
from spikestack.pipeline.inputs import check_finite, load_input
from spikestack.pipeline.netx import NetxExport, export_netx, import_netx, verify_netx
from spikestack.pipeline.stages import (
    BACKENDS, MODE_NAMES, STATS_FORMATS, check_run_paths, chips, energy, export_for, info, load_program, map_graph,
    predict, run, run_program, run_statistics, save_run,
)

_LAZY = {name: "training" for name in (
    "convert_command", "format_summary", "save_summary", "train_hnsg_command", "train_noise_t1_command",
    "train_resnet_command", "train_s3nn_command", "train_spide_command")}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f"spikestack.pipeline.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'spikestack.pipeline' has no attribute {name!r}")


__all__ = [
    "BACKENDS", "DEPLOY_BACKENDS", "MODE_NAMES", "ChunkEvaluation", "DeployInput", "check_finite", "check_run_paths",
    "NetxExport", "export_netx", "import_netx", "verify_netx", "chips", "demo", "deploy", "deploy_input", "energy",
    "evaluate_chunk", "export_for", "info", "load_input",
    "load_program", "map_graph", "predict", "run", "run_program", "run_statistics", "save_run", "simulate_all",
    "STATS_FORMATS", *_LAZY,
]
