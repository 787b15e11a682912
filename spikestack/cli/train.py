"""`spikestack train <method>` and `spikestack convert`: their arguments and commands (`TRAIN_COMMANDS`).

Nothing outside `spikestack.cli` may import it. It imports nothing heavy: the jobs
(`spikestack.pipeline.training`) load torch when a command runs, so `spikestack --help` stays fast.
Two rules keep the library the one place that decides:
- no argparse `choices`: a bad name (dataset, surrogate, arch, noise...) reaches the method, whose
  `SpikestackError` is one line on stderr and exit 2, as from Python; likewise ranges (steps >= 1, seed
  >= 0, keep in (0, 1]...) are the method's to check: floats are typed `FINITE` only, so NaN and inf
  are refused at once by option name;
- an option left out is not passed on (its default is None here), so the method's own default applies.
"""

from __future__ import annotations

import argparse
from typing import Callable

from spikestack.cli.arguments import FINITE, Command, add_progress_argument, wants_progress

# Options that are not keyword arguments of the jobs.
_NOT_PASSED = {"command", "method", "dataset", "calib", "model", "out", "json", "max_memory", "engine"}


def _common(p: argparse.ArgumentParser, out: str = "model.nir") -> None:
    p.add_argument("--dataset", required=True, help="digits, fashion-mnist or a directory of MNIST-layout IDX files")
    p.add_argument("--out", default=out, help=f"the trained model (default {out})")
    p.add_argument("--epochs", type=int, help="training epochs (default: the method's)")
    p.add_argument("--seed", type=int, default=0, help="seed of initialisation, shuffling and noise (default 0)")
    p.add_argument("--lr", type=FINITE, help="Adam learning rate (default: the method's)")
    p.add_argument("--batch-size", type=int, help="mini-batch size (default: the method's)")
    p.add_argument("--limit", type=int, help="the first N training and N test samples only, for quick runs")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's; 1 is fastest for small MLPs)")
    p.add_argument("--json", metavar="SUMMARY.json", help="also write the summary as JSON")
    add_progress_argument(p)


def _target(p: argparse.ArgumentParser) -> None:
    p.add_argument("--for", dest="target", metavar="TARGET",
                   help="netx: train in the form Loihi 2's netx format holds (reset to zero, v starts at 0, "
                        "no pooling) and export netx's integers (docs/netx.md)")


def _s3nn(p: argparse.ArgumentParser) -> None:
    _target(p)
    p.add_argument("--arch", default="mlp", help="mlp or conv (default mlp)")
    p.add_argument("--surrogate", default="s2nn", help="s2nn, sigmoid, rect or ste (default s2nn)")
    p.add_argument("--depth", type=int, help="MLP layers, output included (default 6)")
    p.add_argument("--width", type=int, help="MLP hidden width (default 256)")


def _noise_t1(p: argparse.ArgumentParser) -> None:
    _target(p)
    p.add_argument("--noise", default="gaussian", help="gaussian, uniform or none (default gaussian)")
    p.add_argument("--noise-mean", type=FINITE, help="noise mean in thresholds: the initial potential (default 0.5)")
    p.add_argument("--noise-std", type=FINITE, help="noise standard deviation in thresholds (default 0.29)")
    p.add_argument("--hidden", type=int, nargs="+", help="hidden layer sizes (default 256)")
    p.add_argument("--eval-steps", type=int, nargs="+", default=[1, 4, 8, 16, 32], metavar="T",
                   help="time steps at which to report the converted accuracy (default 1 4 8 16 32)")


def _hnsg(p: argparse.ArgumentParser) -> None:
    _target(p)
    p.add_argument("--keep", type=FINITE, default=0.5,
                   help="fraction of weights kept per layer, in (0, 1] (default 0.5)")
    p.add_argument("--steps", type=int, default=8, help="time steps, in training and evaluation (default 8)")
    p.add_argument("--hidden", type=int, nargs="+", help="hidden layer sizes (default 512)")
    p.add_argument("--sign-term", action=argparse.BooleanOptionalAction, default=True,
                   help="multiply the score gradient by sign(S) (default on; docs/hnsg_ttrbr.md)")
    p.add_argument("--rate-penalty", type=FINITE, help="weight of the mean firing rate in the loss (default 0)")


def _loss_scale(text: str) -> float | str:
    try:  # a number, or a word ('auto') that the method accepts or refuses in one line
        float(text)
    except ValueError:
        return text
    return FINITE(text)


def _spide(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hidden", type=int, nargs="+", help="hidden layer sizes (default 400)")
    p.add_argument("--steps", type=int, help="forward time steps T (default 30)")
    p.add_argument("--backward-steps", type=int, help="ternary backward steps T_b (default 100)")
    p.add_argument("--backward", help="spide (ternary spikes) or exact (linear solve) (default spide)")
    p.add_argument("--loss-scale", type=_loss_scale, help="a positive number or auto (default auto; docs/spide.md)")
    p.add_argument("--schedule", help="learning rate: constant or cosine (annealed to 0 over the run)")


def _resnet(p: argparse.ArgumentParser) -> None:
    p.add_argument("--blocks", type=int, help="residual blocks (default 20)")
    p.add_argument("--width", type=int, help="channels of the first stage (default 8)")
    p.add_argument("--stages", type=int, help="stages; each later one halves the resolution (default 2)")


# method -> (help, its own arguments, default --out, job in spikestack.pipeline.training)
METHODS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], str, str]] = {
    "s3nn": ("single-step (T=1) SNN with a surrogate gradient (S3NN)", _s3nn, "model.nir", "train_s3nn_command"),
    "noise-t1": ("train at T=1 with threshold noise, run at any T", _noise_t1, "model.nir", "train_noise_t1_command"),
    "hnsg": ("learn masks over frozen random weights (HNSG)", _hnsg, "model.nir", "train_hnsg_command"),
    "spide": ("feedback SNN by spike-based implicit differentiation", _spide, "model.nir", "train_spide_command"),
    "resnet": ("the ReLU ResNet ANN that `spikestack convert` turns into an SNN", _resnet, "ann.pt",
               "train_resnet_command"),
}


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """`spikestack train METHOD --dataset ... [options]`, one sub-command per method."""
    sub = parser.add_subparsers(dest="method", required=True, metavar="METHOD")
    for name, (help_text, add_args, out, _) in METHODS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        _common(p, out)
        add_args(p)


def _finish(summary: dict, json_path: str | None) -> int:
    from spikestack.pipeline.training import format_summary, save_summary

    print(format_summary(summary))
    if json_path:
        print(f"wrote {save_summary(summary, json_path)}")
    return 0


def _options(args: argparse.Namespace) -> dict:
    options = {k: v for k, v in vars(args).items() if k not in _NOT_PASSED}
    if "progress" in options:
        options["progress"] = wants_progress(args)
    return options


def run_train(args: argparse.Namespace) -> int:
    """Run the method's job with the parsed options, print its summary; a SpikestackError propagates."""
    from spikestack.pipeline import training

    training.check_job_outputs(args.out, args.json, dataset=args.dataset)  # --json too, before training
    job = getattr(training, METHODS[args.method][3])
    return _finish(job(args.dataset, args.out, **_options(args)), args.json)


def add_convert_arguments(p: argparse.ArgumentParser) -> None:
    """`spikestack convert MODEL.pt --calib DATASET [options]`."""
    p.add_argument("model", help="a ReLU ANN written by `spikestack train resnet` (.pt, read weights-only)")
    p.add_argument("--calib", required=True, help="dataset whose training images tune the thresholds "
                                                  "(digits, fashion-mnist or an IDX directory); its test set is scored")
    p.add_argument("--steps", type=int, default=8, help="time steps the thresholds are tuned for (default 8)")
    p.add_argument("--threshold", default="search", help="max, percentile or search (default search)")
    p.add_argument("--no-restructure", dest="restructure", action="store_false",
                   help="keep residual blocks as they are (docs/hnsg_ttrbr.md)")
    p.add_argument("--calibrate-bias", action="store_true",
                   help="after each threshold, correct the layer's mean error per channel (search only)")
    p.add_argument("--tune", type=int, default=0, metavar="N",
                   help="then tune thresholds and biases on the SNN itself with N labelled training images "
                        "(docs/hnsg_ttrbr.md; default 0: off)")
    p.add_argument("--calib-size", type=int, default=256, help="calibration images (default 256)")
    p.add_argument("--test-limit", type=int, default=1000, help="test images to score the SNN on; 0: none (default 1000)")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    p.add_argument("--json", metavar="SUMMARY.json", help="also write the summary as JSON")
    p.add_argument("--out", default="model.nir", help="the SNN as NIR (default model.nir)")


def run_convert(args: argparse.Namespace) -> int:
    from spikestack.pipeline.training import check_job_outputs, convert_command

    check_job_outputs(args.out, args.json, model=args.model, calib=args.calib)  # --json too, before converting
    return _finish(convert_command(args.model, args.calib, args.out, **_options(args)), args.json)


TRAIN_COMMANDS: dict[str, Command] = {
    "train": Command("train an SNN (s3nn, noise-t1, hnsg, spide) or a ResNet ANN; export it", add_train_arguments,
                     run_train),
    "convert": Command("convert a trained ResNet ANN (.pt) to an SNN with tuned thresholds; export it",
                       add_convert_arguments, run_convert),
}
