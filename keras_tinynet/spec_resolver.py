"""The one answer to "which network?": a preset name, a FLOPs budget or a spec file becomes a NetworkSpec.

It sits above the tables (`presets`) and the tiny formula (`formula`), which do not import it, and it is
what the builders, the training recipe, export and the command line call. Each input is one reader in
`_READERS`; a new input (a curves file of fitted r(c), d(c)) is one more keyword passed to the formula or
one more reader. Plain Python (no TensorFlow).
"""

from __future__ import annotations

import json
import os

from keras_tinynet.formula import tiny_formula
from keras_tinynet.presets import PRESETS, get_spec
from keras_tinynet.spec import ACTIVATION_SUFFIXES, ACTIVATIONS, NetworkSpec


def resolve_spec(
    model: str | None = None, *, flops: float | None = None, spec=None, base: str = "ghostnet_a", **formula_options
) -> NetworkSpec:
    """The NetworkSpec of exactly one of: a preset name (`model`), a FLOPs budget (the tiny formula on the
    `base` architecture, with `formula_options` passed on to it), or a `spec` (a NetworkSpec, its dict, a
    preset name, or the path of a JSON file of `NetworkSpec.to_dict()`)."""
    given = {k: v for k, v in (("model", model), ("flops", flops), ("spec", spec)) if v is not None}
    if len(given) != 1:
        raise ValueError(
            "Pass exactly one of `model`, `flops` and `spec`; received "
            + (", ".join(f"{k}={v!r}" for k, v in given.items()) or "none of them")
            + f". Models: {', '.join(PRESETS)}."
        )
    if flops is not None:
        return spec_for_budget(flops, base, **formula_options)
    if model is not None:
        if model not in PRESETS:
            raise ValueError(f"`model` must be one of {', '.join(PRESETS)}; received model={model!r}.")
        return get_spec(model)
    return _read_spec(spec)


def resolve_build_spec(spec, flops, latency_ms, curves, base: str) -> NetworkSpec:
    """What a builder builds: a `spec`, a `flops` budget (with the `curves` of a twist search if given), or a
    `latency_ms` budget (with the `curves` of a twist latency search, required)."""
    given = {k: v for k, v in (("spec", spec), ("flops", flops), ("latency_ms", latency_ms)) if v is not None}
    if len(given) != 1:
        raise ValueError(
            "Pass exactly one of `spec`, `flops` and `latency_ms`; received "
            + (", ".join(f"{k}={v!r}" for k, v in given.items()) or "none of them")
            + "."
        )
    if spec is not None:
        if curves is not None:
            raise ValueError(f"`curves`={curves!r} applies to a `flops` or `latency_ms` budget, not to a `spec`.")
        return resolve_spec(spec=spec)
    if latency_ms is None:
        return resolve_spec(flops=flops, base=base, curves=curves)
    if curves is None:
        raise ValueError(f"`latency_ms`={latency_ms!r} needs `curves`: the curves file of a twist --latency_ms search.")
    from keras_tinynet.presets import ARCHITECTURES
    from keras_tinynet.twist.curves import load_curves  # the twist is optional: imported when used

    return load_curves(curves).latency_spec(latency_ms, family=ARCHITECTURES[base].family)


def spec_for_budget(flops: float, base: str, **formula_options) -> NetworkSpec:
    """The tiny formula's network for `flops` on `base` (the formula's errors name `flops` and its range)."""
    if isinstance(flops, bool) or not isinstance(flops, (int, float)) or not flops > 0:
        raise ValueError(f"`flops` must be a positive number such as 200e6; received flops={flops!r}.")
    return tiny_formula(float(flops), base=base, **formula_options).spec


def _read_spec(spec) -> NetworkSpec:
    if isinstance(spec, NetworkSpec):
        return spec
    if isinstance(spec, dict):
        return NetworkSpec.from_dict(spec)
    if isinstance(spec, str) and spec in PRESETS:
        return get_spec(spec)
    if isinstance(spec, (str, os.PathLike)):
        return _read_spec_file(os.fspath(spec))
    raise ValueError(
        f"`spec` must be a NetworkSpec, a variant name ({', '.join(PRESETS)}), a spec dict or a JSON file path; "
        f"received spec={spec!r}."
    )


def _read_spec_file(path: str) -> NetworkSpec:
    if not os.path.isfile(path):
        raise ValueError(
            f"`spec` must be a NetworkSpec JSON file (NetworkSpec.to_dict()) or a model name "
            f"({', '.join(PRESETS)}); received spec={path!r} (no such file)."
        )
    try:
        with open(path) as handle:
            return NetworkSpec.from_dict(json.load(handle))
    except (json.JSONDecodeError, TypeError, UnicodeDecodeError) as error:
        raise ValueError(f"`spec`={path!r} is not a NetworkSpec JSON file: {error}.") from None


def resolve_activation(spec: NetworkSpec, activation: str | None) -> str:
    """`activation` None is the spec's own; any other must be one of ACTIVATIONS (the one check of it)."""
    activation = spec.activation if activation is None else activation
    if activation not in ACTIVATIONS:
        raise ValueError(f"`activation` must be one of {ACTIVATIONS}; received activation={activation!r}.")
    return activation


def model_name(spec: NetworkSpec, activation: str) -> str:
    """The spec's name, suffixed with the activation where it is not the spec's own (ghostnet_a_hswish)."""
    return spec.name + ("" if activation == spec.activation else ACTIVATION_SUFFIXES[activation])
