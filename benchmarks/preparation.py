"""Each implementation built once and its runners made, each exported file written once; a path that
cannot run is recorded in `skipped` with its error, never measured as something else.

`IMPLEMENTATIONS` is the one table of how each implementation is built and exported; `Preparation.make`
turns (implementation, runtime, batch) into a runner: the implementation's own runtimes (PyTorch,
tf-keras), else keras_tinynet.latency's in-process forms of the Keras model, else latency's runtime on
the file the implementation exports for it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import time
from collections.abc import Callable

import catalogue
import roofline
import runners
from _common import he_normal_kernels
from catalogue import Entry
from measuring import Runner

from keras_tinynet import latency
from keras_tinynet.presets import PRESETS, builder_name


@dataclasses.dataclass
class Implementation:
    """A built implementation: its model (None where another process holds it), image size and MACs per
    image, the exporters of the files its runtimes read (kind -> make(path, batch) -> what the runtime
    opens) and the runtimes it runs itself (runtime -> make(images) -> (call, timer, note))."""

    model: object
    image_size: int
    macs: float
    exporters: dict[str, Callable[[str, int], str]]
    own_runtimes: dict[str, Callable] = dataclasses.field(default_factory=dict)
    per_batch_exports: tuple[str, ...] = ("tflite",)  # kinds whose file fixes the batch
    channels_first: bool = False
    exportable: object = None  # keras_tinynet.export.Exportable, where the package's exports take the model


def keras_macs(model) -> float:
    """Multiply-adds per image of the Conv2D, DepthwiseConv2D and Dense layers of a built Keras model."""
    import keras

    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            _, h, w, c = layer.output.shape
            total += h * w * c * layer.kernel_size[0] * layer.kernel_size[1]
        elif isinstance(layer, keras.layers.Conv2D):
            _, h, w, c = layer.output.shape
            total += h * w * c * layer.kernel_size[0] * layer.kernel_size[1] * layer.input.shape[-1] // layer.groups
        elif isinstance(layer, keras.layers.Dense):
            total += layer.input.shape[-1] * layer.units
    return float(total)


def spec_macs(network: str) -> float:
    from keras_tinynet.counting import count
    from keras_tinynet.presets import get_spec

    return count(get_spec(network)).flops


def build_keras(name: str) -> Implementation:
    """A keras_tinynet preset or keras.applications model, exported by the package's exports."""
    import keras

    import keras_tinynet
    from keras_tinynet import export
    from keras_tinynet.imagenet import class_names

    if name in PRESETS:
        spec = keras_tinynet.get_spec(name)
        model, size, macs = getattr(keras_tinynet, builder_name(name))(), spec.default_size, spec_macs(name)
    else:
        size, spec = 224, None
        builder = getattr(keras.applications, catalogue.KERAS_APPLICATIONS[name])
        model = builder(weights=None, input_shape=(size, size, 3))
        macs = keras_macs(model)
    he_normal_kernels(model)
    exportable = export.Exportable(model=model, spec=spec, image_size=size, labels=tuple(class_names()))
    exporters = {
        kind: lambda path, batch, kind=kind: latency.write_export(exportable, kind, path, batch)
        for kind in latency.EXPORT_KINDS
    }
    return Implementation(model, size, macs, exporters, exportable=exportable)


def build_kimm(entry: Entry, preparation: Preparation) -> Implementation:
    """kimm's GhostNet 1.0x, exported by kimm's own TFLite export (its ONNX export needs the torch backend)."""
    import kimm

    size = 224
    model = kimm.models.GhostNetW100(weights=None, input_shape=(size, size, 3))
    he_normal_kernels(model)

    def tflite(path, batch):
        with contextlib.redirect_stdout(io.StringIO()):  # Keras's export prints the whole signature to stdout
            kimm.export.export_tflite(model, size, path, batch_size=batch)
        return path

    def onnx(path, batch):
        raise NotImplementedError(
            "kimm.export.export_onnx runs on the torch Keras backend only (channels_first); "
            "this process runs Keras on TensorFlow"
        )

    return Implementation(model, size, spec_macs(entry.network), {"tflite": tflite, "onnx": onnx})


def build_timm(entry: Entry, preparation: Preparation) -> Implementation:
    """timm's model in PyTorch (torch, torch_tuned, torch_compile) and timm's own ONNX export."""
    import timm

    model = timm.create_model(PRESETS[entry.network].timm_model, pretrained=False).eval()
    size = PRESETS[entry.network].image_size
    torch_runtimes = {
        runtime: lambda x, runtime=runtime: (runners.torch_runner(model, runtime, x), None, "")
        for runtime in ("torch", "torch_tuned", "torch_compile")
    }
    exporters = {"onnx": lambda path, batch: runners.timm_onnx(model, path, size)}
    macs = spec_macs(entry.network)
    return Implementation(model, size, macs, exporters, torch_runtimes, per_batch_exports=(), channels_first=True)


def build_kcam(entry: Entry, preparation: Preparation) -> Implementation:
    """keras_cv_attention_models' GhostNet 1.0x under tf-keras, in its worker process, and the TFLite
    conversion its README shows (made there, timed here)."""
    worker = preparation.kcam_worker()
    size = 224

    def tf_keras(x):
        inputs = preparation.images_file(x)
        return worker.runner(inputs), worker.timer(inputs), "tf-keras, timed in its own process"

    exporters = {"tflite": lambda path, batch: worker.ask(op="tflite", path=path)["path"]}
    macs = spec_macs(entry.network)
    return Implementation(None, size, macs, exporters, {"tf_keras": tf_keras}, per_batch_exports=())


IMPLEMENTATIONS = {
    "keras_tinynet": lambda entry, preparation: build_keras(entry.model),
    "keras.applications": lambda entry, preparation: build_keras(entry.model),
    "kimm": build_kimm,
    "timm": build_timm,
    "keras_cv_attention_models": build_kcam,
}


class Preparation:
    """The runners of the run's current group (`runners`), and what outlives groups: the exported files,
    the op-count graphs, each network's traffic, the keras_cv_attention_models worker."""

    def __init__(self, workdir: str, config):
        import numpy as np

        self.workdir, self.config = workdir, config
        self.rng = np.random.default_rng(0)
        self.inputs: dict[tuple[int, int], np.ndarray] = {}
        self.runners: list[Runner] = []
        self.skipped: list[dict] = []
        self.graphs: dict[str, str] = {}  # name -> exported .onnx/.tflite file, for op counts
        self.files: dict[tuple[str, str, int], str] = {}
        self.traffic: dict[str, roofline.Traffic] = {}
        self.kcam = None

    def images(self, size: int, batch: int, channels_first: bool = False):
        if (size, batch) not in self.inputs:
            self.inputs[size, batch] = self.rng.integers(0, 256, (batch, size, size, 3)).astype("float32")
        images = self.inputs[size, batch]
        return images.transpose(0, 3, 1, 2).copy() if channels_first else images

    def images_file(self, images) -> str:
        """`images` (NHWC, from `images`) as an .npy file, for a process of another Keras."""
        import numpy as np

        path = os.path.join(self.workdir, f"images-{images.shape[1]}-{images.shape[0]}.npy")
        if not os.path.exists(path):
            np.save(path, images)
        return path

    def kcam_worker(self) -> runners.KcamWorker:
        self.kcam = self.kcam or runners.KcamWorker(self.config.threads, self.config.onednn)
        return self.kcam

    def exported(self, entry: Entry, implementation: Implementation, kind: str, batch: int) -> str:
        """The file `kind` of `entry` (for `batch` where the kind fixes it), exported on first use."""
        batch = batch if kind in implementation.per_batch_exports else 0
        key = (entry.model, kind, batch)
        if key not in self.files:
            name = f"{entry.model}.{batch}.{kind}" if batch else f"{entry.model}.{kind}"
            self.files[key] = implementation.exporters[kind](os.path.join(self.workdir, name), batch or 1)
            if kind in ("onnx", "tflite"):
                self.graphs.setdefault(f"{entry.model} {kind}", self.files[key])
        return self.files[key]

    def network_traffic(self, network: str, exportable=None) -> roofline.Traffic:
        """Bytes per image of `network`: from the Keras graph our exports run, the `inference_model` of its
        exportable (the one the exports then reuse; ours stands in for timm, kimm, kcam)."""
        if network not in self.traffic:
            exportable = exportable if exportable is not None else build_keras(network).exportable
            self.traffic[network] = roofline.keras_traffic(exportable.inference_model)
        return self.traffic[network]

    def make(self, entry: Entry, implementation: Implementation, runtime: str, batch: int):
        """(call, timer, note) of `runtime` on `implementation` at `batch`."""
        x = self.images(implementation.image_size, batch, implementation.channels_first)
        if runtime in implementation.own_runtimes:
            return implementation.own_runtimes[runtime](x)
        threads, kind = self.config.threads, latency.export_kind(runtime)
        if kind is None:
            return latency.in_process_runner(implementation.model, runtime, x, threads), None, ""
        path = self.exported(entry, implementation, kind, batch)
        return latency.file_runner(runtime, path, x, threads), None, ""

    def add(self, entry: Entry, runtimes: tuple[str, ...]) -> None:
        """Builds `entry` and a runner of each of its runtimes at each batch size, each checked against the
        first runtime's output on the same images."""
        import numpy as np

        start = time.perf_counter()
        try:
            implementation = IMPLEMENTATIONS[entry.implementation](entry, self)
            self.network_traffic(entry.network, implementation.exportable)
        except Exception as error:  # the package or its model does not load on this stack
            for runtime in runtimes:
                self.skip(entry, runtime, error)
            return
        for batch in self.config.batch_sizes:
            reference = None
            for runtime in runtimes:
                try:
                    call, timer, note = self.make(entry, implementation, runtime, batch)
                    output = np.asarray(call())
                except Exception as error:
                    self.skip(entry, runtime, error)
                    continue
                size, macs = implementation.image_size, implementation.macs
                runner = Runner(entry, runtime, batch, size, macs, call, timer, note=note)
                if reference is None:
                    reference = (runtime, output)
                runner.reference_runtime = reference[0]
                runner.max_abs_diff = float(np.max(np.abs(output - reference[1])))
                runner.output_range = float(np.ptp(reference[1]))
                self.runners.append(runner)
        print(f"prepared {entry.model} in {time.perf_counter() - start:.0f} s", flush=True)

    def skip(self, entry: Entry, runtime: str, error: Exception) -> None:
        reason = f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
        print(f"skipped {entry.model} {runtime}: {reason}", flush=True)
        if {"model": entry.model, "runtime": runtime, "reason": reason} not in self.skipped:
            self.skipped.append({"model": entry.model, "runtime": runtime, "reason": reason})

    def close(self) -> None:
        if self.kcam:
            self.kcam.close()
