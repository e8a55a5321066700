"""The Markdown model card of a published TF Hub form (the metadata Kaggle Models shows)."""

from __future__ import annotations

import collections
import datetime
import math
import os

from keras_tinynet import __version__
from keras_tinynet.counting import count
from keras_tinynet.files import file_hash
from keras_tinynet.spec import IMAGENET_PREPROCESSING
from keras_tinynet.weights import registry

BLOCK_KIND_NAMES = {"ghost": "ghost bottlenecks", "mbconv": "MBConv blocks", "ds": "depthwise-separable blocks"}
CITATION = """\
@inproceedings{han2020model,
  title={Model Rubik's Cube: Twisting Resolution, Depth and Width for TinyNets},
  author={Han, Kai and Wang, Yunhe and Zhang, Qiulin and Zhang, Wei and Xu, Chunjing and Zhang, Tong},
  booktitle={Advances in Neural Information Processing Systems},
  year={2020}
}
@inproceedings{han2020ghostnet,
  title={GhostNet: More Features from Cheap Operations},
  author={Han, Kai and Wang, Yunhe and Tian, Qi and Guo, Jianyuan and Xu, Chunjing and Xu, Chang},
  booktitle={Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition},
  year={2020}
}"""


def _weights_line(weights, variant: str) -> str:
    """What the card says the weights are: a registered tag's source and hash, a file's name and hash."""
    if registry.is_tag(weights):
        entry = registry.resolve_entry(variant, weights).entry
        return f"`{weights}`: {entry['source']} ({entry['hash_algorithm']} `{entry['hash'][:16]}...`)"
    if weights:
        return f"`{os.path.basename(weights)}` (sha256 `{file_hash(weights)[:16]}...`)"
    return "random initialization (untrained)"


def model_card(
    exportable,
    form: str,
    license_name: str = "Apache-2.0",
    source: str | None = None,
    archive: str | None = None,
) -> str:
    """The Markdown model card of one published form (the metadata Kaggle Models shows)."""
    spec, size = exportable.spec, exportable.image_size
    include_top = form == "classification"
    counts = count(spec, size, include_top=include_top, classes=exportable.classes)
    scale_size = math.floor(size / exportable.crop_pct)
    title = f"{exportable.name} ({form.replace('_', ' ')})"
    weights = _weights_line(exportable.weights, spec.name)
    if include_top:
        io = (
            f"- Input: `images`, float32 `[batch, {size}, {size}, 3]`, RGB, values in [0, 1].\n"
            f"- Output: logits `[batch, {exportable.classes}]` (apply softmax for probabilities); "
            "class labels in class-index order are listed below"
            f"{' (ImageNet-1k)' if exportable.classes == 1000 else ''}."
        )
    else:
        io = (
            "- Input: `images`, float32 `[batch, height, width, 3]`, RGB, values in [0, 1]; any height and "
            f"width from 32 (trained at {size}x{size}).\n"
            f"- Output: the globally average-pooled features of the final 1x1 conv, float32 "
            f"`[batch, {spec.final_channels}]`."
        )
    labels = ""
    if include_top:
        shown = ", ".join(f"{i}: {label}" for i, label in enumerate(exportable.labels[:10]))
        more = f", ... ({exportable.classes} classes)" if exportable.classes > 10 else ""
        labels = f"\n## Classes\n\n{shown}{more}\n"
    usage = (
        "```python\n"
        "import tensorflow as tf, tensorflow_hub as hub, tf_keras\n"
        f"layer = hub.KerasLayer(PATH, trainable=True)  # {form}\n"
        "model = tf_keras.Sequential([tf_keras.Input(("
        + (f"{size}, {size}" if include_top else "None, None")
        + ", 3)), layer"
        + ("" if include_top else ", tf_keras.layers.Dense(NUM_CLASSES)")
        + "])\n"
        "```\n\n"
        'Keras 3: `keras.layers.TFSMLayer(PATH, call_endpoint="serving_default")` (inference).\n'
        "TensorFlow alone: `module = tf.saved_model.load(PATH); outputs = module(images, training=False)`."
    )
    kinds = collections.Counter(block.kind for block in spec.blocks)
    blocks = ", ".join(f"{number} {BLOCK_KIND_NAMES[kind]}" for kind, number in kinds.items())
    head = f", conv_head {spec.head_channels}" if spec.head_channels else ""
    architecture = (
        f"`{spec.name}`: stem {spec.stem_channels}, {blocks}, final conv {spec.final_channels}{head}; "
        f"activation {exportable.activation}"
    )
    family = "GhostNet of the TinyNet family" if "ghost" in kinds else "TinyNet (EfficientNet-B0 scaled)"
    return f"""# {title}

A {family} ("Model Rubik's Cube", NeurIPS 2020) exported by keras_tinynet {__version__}
as a TF2 reusable SavedModel (TF Hub API: `__call__(images, training)`, `variables`, `trainable_variables`,
`regularization_losses`), fine-tunable.

| | |
|---|---|
| Form | {form} |
| Architecture | {architecture} |
| Input size | {size}x{size} |
| Parameters | {counts.params:,} ({counts.params / 1e6:.2f}M) |
| FLOPs | {counts.flops / 1e6:.1f}M multiply-adds at {size}x{size} |
| Weights | {weights} |
| Framework | TensorFlow 2 (SavedModel) |
| Source | {source or f"keras_tinynet {__version__} (keras_tinynet.export.publish_hub)"} |
| License | {license_name} |
| Archive | {f"`{os.path.basename(archive)}`" if archive else "-"} |
| Exported | {datetime.date.today().isoformat()} |

## Input and preprocessing

{io}
- Normalization (ImageNet mean {IMAGENET_PREPROCESSING.mean}, std {IMAGENET_PREPROCESSING.std}) happens inside.
- Eval preprocessing of the training pipeline: resize the shorter side to {scale_size}
  (= floor({size} / {exportable.crop_pct})),
  bicubic with antialiasing, then center-crop {size}x{size}.
{labels}
## Usage

{usage}

## Architecture

```
{spec.table()}
```

## Citation

```bibtex
{CITATION}
```
"""
