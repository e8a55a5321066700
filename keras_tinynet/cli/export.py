r"""Export a model and its weights for serving: TF Serving SavedModel, TFLite and ONNX.

  keras-tinynet export --model ghostnet_d --weights ema.weights.h5 --output_dir exported \
      --formats saved_model,tflite_float32,tflite_float16,tflite_int8,onnx --representative_data images/

writes exported/<name>/<version>/ (TF Serving; signatures serving_default and serving_bytes) and
exported/<name>.<float32|float16|int8>.tflite and exported/<name>.onnx. It prints each TFLite model's input
and output details and its latency with XNNPACK.
"""

from __future__ import annotations

import os

from keras_tinynet.cli.common import (
    NETWORK_FLAGS,
    add_model_arguments,
    add_output_dir,
    add_run_argument,
    add_weights_argument,
    choice_list,
    comma_list,
    curves_spec,
    make_output_dir,
    non_negative_int,
    positive_int,
    quiet_tensorflow,
    require,
    take_from_run,
)

DESCRIPTION = __doc__


def add_exportable_arguments(parser, name_help: str) -> None:
    """The model, its weights, labels and name: what export and publish-hub both load."""
    add_model_arguments(parser)
    add_weights_argument(parser)
    add_run_argument(parser, "the network, input size, activation and class names (as labels)")
    parser.add_argument(
        "--labels", help="text file with one class label per line (default: the run's class names; ImageNet's)"
    )
    parser.add_argument("--name", help=name_help)


def load_exportable(args):
    """The network and weights to export, from the flags completed by the run that trained the weights; returns
    (the Exportable, the Run or None)."""
    run = take_from_run(args, ("image_size", "activation", "labels", *NETWORK_FLAGS), network_as_spec=True)
    if args.model is None and args.flops is None and args.spec is None:
        raise ValueError(
            "Pass the network of --weights: --model, --flops or --spec, or --run (the directory of the training "
            "run that wrote them)."
        )
    quiet_tensorflow(args.verbose)
    from keras_tinynet import export

    twisted = curves_spec(args)
    exportable = export.load_exportable(
        args.model,
        flops=None if twisted else args.flops,
        spec=twisted.spec if twisted else args.spec,
        weights=args.weights,
        labels=args.labels,
        image_size=args.image_size,
        activation=args.activation,
        name=args.name,
    )
    return exportable, run


def add_arguments(parser) -> None:
    add_exportable_arguments(parser, "model name (directory and file names); default: the spec's name")
    add_output_dir(parser, "the SavedModel goes to <output_dir>/<name>/<version>/, the .tflite/.onnx files beside it")
    parser.add_argument(
        "--version", type=positive_int, help="TF Serving version number (default: one more than the largest)"
    )
    parser.add_argument(
        "--formats",
        type=comma_list,
        default=["saved_model", "tflite_float32", "tflite_float16", "onnx"],
        help="comma-separated: saved_model, tflite_<float32|float16|int8>, onnx (default: all but tflite_int8)",
    )
    parser.add_argument(
        "--representative_data",
        help="calibration images for tflite_int8: a folder, digits or tfds:<name>[:<split>] (default: the run's "
        "training images)",
    )
    parser.add_argument(
        "--representative_count", type=positive_int, default=100, help="calibration images for tflite_int8"
    )
    parser.add_argument(
        "--int8_io", choices=["uint8", "int8"], default="uint8", help="input/output type of the int8 TFLite model"
    )
    parser.add_argument(
        "--benchmark_runs", type=non_negative_int, default=50, help="TFLite latency runs (0 skips the benchmark)"
    )
    parser.add_argument("--threads", type=positive_int, help="TFLite latency: interpreter threads (default: all CPUs)")
    parser.add_argument("--onnx_opset", type=positive_int, default=17, help="ONNX opset")


def calibration_source(run) -> str:
    """What int8 calibrates with when --representative_data is left out: the training images of the run."""
    dataset = run.config.get("dataset") if run else None
    if dataset == "digits":
        return "digits"
    if dataset and dataset.startswith("folder:"):
        return os.path.join(dataset.removeprefix("folder:"), "train")
    if dataset:
        return f"tfds:{dataset}"
    raise ValueError(
        "--formats includes tflite_int8, which needs --representative_data (a folder of images, digits or "
        "tfds:<name>[:<split>]): a few hundred images like those the model will see (a run's own training "
        "images are the default where --run or the run holding --weights is known)."
    )


def all_formats() -> tuple[str, ...]:
    from keras_tinynet import export

    return ("saved_model", *(f"tflite_{q}" for q in export.TFLITE_QUANTIZATIONS), "onnx")


def run(args) -> dict:
    quiet_tensorflow(args.verbose)  # before all_formats() imports TensorFlow
    formats = choice_list("--formats", args.formats, all_formats())
    output_dir = require(args.output_dir, "--output_dir", "the SavedModel goes to <output_dir>/<name>/<version>/")
    from keras_tinynet import export

    if "onnx" in formats:  # every input is checked before anything is written: no partial export
        export.check_onnx_export()
    exportable, run = load_exportable(args)
    print(
        f"Model {exportable.name}: {exportable.image_size}x{exportable.image_size}, {exportable.classes} classes, "
        f"weights {exportable.weights or 'random (no --weights)'}"
    )
    representative = None
    if "tflite_int8" in formats:
        source = args.representative_data or calibration_source(run)
        representative = export.representative_images(
            source, exportable.image_size, args.representative_count, exportable.crop_pct
        )
        print(f"Calibrating int8 on {len(representative)} images from {source}")
    make_output_dir(output_dir)
    written = {}
    if "saved_model" in formats:
        written["saved_model"] = export.export_saved_model(exportable, output_dir, version=args.version)
        print(f"SavedModel (TF Serving): {written['saved_model']}  signatures: serving_default, serving_bytes")
    for name in formats:
        if not name.startswith("tflite_"):
            continue
        quantization = name[len("tflite_") :]
        path = os.path.join(output_dir, f"{exportable.name}.{quantization}.tflite")
        calibration = representative if quantization == "int8" else None
        written[name] = export.export_tflite(exportable, path, quantization, calibration, int8_io=args.int8_io)
        print(f"TFLite {quantization}: " + export.format_tflite_details(export.tflite_details(path)))
        if args.benchmark_runs:
            latency = export.benchmark_tflite(path, runs=args.benchmark_runs, num_threads=args.threads)
            print(
                f"  latency ({latency['delegate']}, {latency['num_threads']} threads, {latency['runs']} runs): "
                f"median {latency['median_ms']:.2f} ms, mean {latency['mean_ms']:.2f} ms, "
                f"p90 {latency['p90_ms']:.2f} ms"
            )
    if "onnx" in formats:
        path = os.path.join(output_dir, f"{exportable.name}.onnx")
        written["onnx"] = export.export_onnx(exportable, path, opset=args.onnx_opset)
        size = exportable.image_size
        print(
            f"ONNX (opset {args.onnx_opset}): {path}  input images [batch, {size}, {size}, 3] "
            "float32 RGB 0..255 (NHWC), output probabilities"
        )
    return written
