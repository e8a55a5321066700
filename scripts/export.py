r"""Exports a GhostNet and its weights for serving: TF Serving SavedModel, TFLite and ONNX.

  python scripts/export.py --variant ghostnet_d --weights ema.weights.h5 --export_dir exported \
      --formats saved_model,tflite_float32,tflite_float16,tflite_int8,onnx --representative_data images/

writes exported/<name>/<version>/ (TF Serving; signatures serving_default and serving_bytes) and
exported/<name>.<float32|float16|int8>.tflite, exported/<name>.onnx (or under --output_dir). It prints
each TFLite model's input and output details and its latency with XNNPACK. The logic is in
keras_tinynet.export.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import define_model_flags, run_flags_main  # noqa: E402

from keras_tinynet import export  # noqa: E402

FORMATS = ("saved_model", "tflite_float32", "tflite_float16", "tflite_int8", "onnx")

FLAGS = flags.FlagValues()
define_model_flags(FLAGS, "Model name (directory name under --export_dir); default: the spec's name.")
flags.DEFINE_string(
    "export_dir", None, "Base directory: the SavedModel goes to <export_dir>/<name>/<version>/.", flag_values=FLAGS
)
flags.DEFINE_integer(
    "version", None, "TF Serving version number (default: one more than the largest present).", flag_values=FLAGS
)
flags.DEFINE_list(
    "formats",
    ["saved_model", "tflite_float32", "tflite_float16", "onnx"],
    f"Comma-separated subset of {', '.join(FORMATS)}.",
    flag_values=FLAGS,
)
flags.DEFINE_string(
    "output_dir", None, "Directory for the .tflite and .onnx files (default: --export_dir).", flag_values=FLAGS
)
flags.DEFINE_string(
    "representative_data",
    None,
    "Calibration images for tflite_int8: a folder of images or tfds:<name>[:<split>].",
    flag_values=FLAGS,
)
flags.DEFINE_integer("representative_count", 100, "Number of calibration images for tflite_int8.", flag_values=FLAGS)
flags.DEFINE_enum(
    "int8_io", "uint8", list(export.INT8_IO_TYPES), "Input/output type of the int8 TFLite model.", flag_values=FLAGS
)
flags.DEFINE_integer(
    "benchmark_runs", 50, "TFLite latency: timed invocations (0 skips the benchmark).", flag_values=FLAGS
)
flags.DEFINE_integer("threads", None, "TFLite latency: interpreter threads (default: all CPUs).", flag_values=FLAGS)
flags.DEFINE_integer("onnx_opset", 17, "ONNX opset.", flag_values=FLAGS)


def run(flag_values: flags.FlagValues = FLAGS) -> dict:
    """Runs the export the parsed flags describe; returns the written paths by format."""
    f = flag_values
    formats = list(dict.fromkeys(f.formats))
    unknown = [name for name in formats if name not in FORMATS]
    if not formats or unknown:
        raise ValueError(
            f"--formats must be a comma-separated subset of {', '.join(FORMATS)}; received --formats={','.join(f.formats)!r}."
        )
    if f.export_dir is None:
        raise ValueError("--export_dir is required (the SavedModel goes to <export_dir>/<name>/<version>/).")
    if "tflite_int8" in formats and f.representative_data is None:
        raise ValueError(
            "--formats includes tflite_int8, which needs --representative_data (a folder of images or tfds:<name>[:<split>])."
        )
    if f.benchmark_runs < 0:
        raise ValueError(f"--benchmark_runs must be >= 0; received --benchmark_runs={f.benchmark_runs}.")
    exportable = export.load_exportable(
        f.variant,
        flops=export.parse_flops(f.flops),
        spec=f.spec,
        weights=f.weights,
        labels=f.labels,
        image_size=f.image_size,
        activation=f.activation,
        name=f.name,
    )
    print(
        f"Model {exportable.name}: {exportable.image_size}x{exportable.image_size}, {exportable.classes} classes, "
        f"weights {exportable.weights or 'random (no --weights)'}"
    )
    output_dir = f.output_dir or f.export_dir
    written = {}
    if "saved_model" in formats:
        written["saved_model"] = export.export_saved_model(exportable, f.export_dir, version=f.version)
        print(f"SavedModel (TF Serving): {written['saved_model']}  signatures: serving_default, serving_bytes")
    for name in formats:
        if not name.startswith("tflite_"):
            continue
        quantization = name[len("tflite_") :]
        representative = None
        if quantization == "int8":
            representative = export.representative_images(
                f.representative_data, exportable.image_size, f.representative_count, exportable.crop_pct
            )
            print(f"Calibrating int8 on {len(representative)} images from {f.representative_data}")
        path = os.path.join(output_dir, f"{exportable.name}.{quantization}.tflite")
        written[name] = export.export_tflite(exportable, path, quantization, representative, int8_io=f.int8_io)
        print(f"TFLite {quantization}: " + export.format_tflite_details(export.tflite_details(path)))
        if f.benchmark_runs:
            latency = export.benchmark_tflite(path, runs=f.benchmark_runs, num_threads=f.threads)
            print(
                f"  latency ({latency['delegate']}, {latency['num_threads']} threads, {latency['runs']} runs): "
                f"median {latency['median_ms']:.2f} ms, mean {latency['mean_ms']:.2f} ms, p90 {latency['p90_ms']:.2f} ms"
            )
    if "onnx" in formats:
        path = os.path.join(output_dir, f"{exportable.name}.onnx")
        written["onnx"] = export.export_onnx(exportable, path, opset=f.onnx_opset)
        print(
            f"ONNX (opset {f.onnx_opset}): {path}  input images [batch, {exportable.image_size}, {exportable.image_size}, 3] "
            "float32 RGB 0..255 (NHWC), output probabilities"
        )
    return written


def main(argv: list[str] | None = None) -> int:
    return run_flags_main(__doc__, FLAGS, run, argv)


if __name__ == "__main__":
    sys.exit(main())
