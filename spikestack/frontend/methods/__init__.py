"""Training methods: each builds a `SpikingSequential`, trains it with `frontend.train.fit` and exports it."""

from spikestack.frontend.methods.hnsg import (
    SupermaskLinear, build_lif_mlp, evaluate_hnsg, export_hnsg, materialise_supermasks, train_dense_lif, train_hnsg,
    train_hnsg_model,
)
from spikestack.frontend.methods.noise_t1 import (
    evaluate_at_steps, export_noise_t1, train_bptt, train_demo_model, train_noise_t1,
)
from spikestack.frontend.methods.spide import export_spide, train_spide
from spikestack.frontend.methods.s3nn import build_s3nn_convnet, build_s3nn_mlp, evaluate_s3nn, export_s3nn, train_s3nn
from spikestack.frontend.methods.ttrbr import Conversion, convert_ann, convert_file, snn_accuracy, train_resnet, tune_thresholds
from spikestack.frontend.methods.ttrbr_tuning import TaskTuning, tune_on_task
from spikestack.frontend.methods.ttrbr_ann import ResNetSpec, build_resnet, load_ann, save_ann
from spikestack.frontend.methods.ttrbr_models import SpikingGraph

__all__ = [
    "export_spide", "train_spide",
    "evaluate_at_steps", "export_noise_t1", "train_bptt", "train_demo_model", "train_noise_t1",
    "build_s3nn_convnet", "build_s3nn_mlp", "evaluate_s3nn", "export_s3nn", "train_s3nn",
    "SupermaskLinear", "build_lif_mlp", "evaluate_hnsg", "export_hnsg", "materialise_supermasks", "train_dense_lif",
    "train_hnsg", "train_hnsg_model",
    "Conversion", "convert_ann", "convert_file", "snn_accuracy", "train_resnet", "tune_thresholds",
    "TaskTuning", "tune_on_task",
    "ResNetSpec", "SpikingGraph", "build_resnet", "load_ann", "save_ann",
]
