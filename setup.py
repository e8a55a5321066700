"""keras_tinynet: the GhostNets of TinyNet for Keras 3."""

import pathlib
import re

from setuptools import find_packages, setup

here = pathlib.Path(__file__).parent
version = re.search(r'__version__ = "([^"]+)"', (here / "keras_tinynet" / "__init__.py").read_text()).group(1)
# What the parity tests and the benchmarks both compare against: timm (PyTorch) and the other Keras GhostNets.
convert = ["torch==2.14.1", "timm"]  # converting .pth checkpoints and the parity check against timm
other_implementations = [*convert, "kimm", "keras-cv-attention-models"]
export = ["tf2onnx>=1.17", "onnxruntime", "ai-edge-litert"]

setup(
    name="keras_tinynet",
    version=version,
    description="GhostNet-A..D of TinyNet ('Model Rubik's Cube', NeurIPS 2020) as Keras 3 applications",
    long_description=(here / "README.md").read_text(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["keras_tinynet", "keras_tinynet.*"]),
    package_data={"keras_tinynet": ["resources/*"]},
    install_requires=[
        "tensorflow>=2.16",
        "keras>=3.10",
        "tensorflow-datasets",
        "importlib_resources",  # tensorflow-datasets 4.9.10 needs it but does not declare it
        "absl-py",
        "numpy",
        "h5py",
        "tensorboard",  # TF 2.21 no longer installs it; keras.callbacks.TensorBoard needs it
        "scikit-learn",  # ships the embedded training data (handwritten digits)
        "pillow",
        "safetensors",  # reads timm's .safetensors checkpoints (numpy only, no torch)
    ],
    extras_require={
        "dev": ["pytest", "pytest-timeout", "hypothesis", "jax[cpu]", "ruff"],
        "convert": convert,
        "parity": [*other_implementations, "torchvision==0.29.1", "scikit-image"],
        "hub": ["tensorflow-hub", "tf-keras", "setuptools<81"],  # tensorflow_hub imports pkg_resources
        # keras_tinynet.keras_hub_models: Backbone, ImageClassifier and presets (its tensorflow-text pin: TF 2.21)
        "keras_hub": ["keras-hub==0.32.0"],
        "export": export,
        # keras-tinynet twist: trials on Ray Tune, plots with matplotlib
        "search": ["ray[tune]", "matplotlib"],
        # benchmarks/inference.py: every runtime (OpenVINO too), and tf-keras for keras-cv-attention-models
        "bench": ["matplotlib", "openvino", "onnx", "tf-keras", *export, *other_implementations],
    },
    entry_points={"console_scripts": ["keras-tinynet=keras_tinynet.cli:main"]},
)
