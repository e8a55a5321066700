"""The pretrained-weights registry: published checkpoints, verified on download, converted on first use.

The registry is a JSON file::

    {"format": 2,
     "weights": {"<variant>": {"<tag>": ENTRY}}}     # tag: "imagenet", "imagenet_ssld", ...

    ENTRY = {"file": "ghostnet_100.in1k.safetensors",  # name in the cache and on a mirror
             "url": "https://huggingface.co/timm/ghostnet_100.in1k/resolve/main/model.safetensors",
             "format": "timm_safetensors",           # or "kcam_h5", "keras_weights_h5" (see SOURCE_FORMATS)
             "hash_algorithm": "sha256",             # md5 only where the source publishes only md5
             "hash": "<hex digest as published>",
             "size": 20871632,                       # bytes; the download is cut off a little above it
             "max_size": null,                       # where the source publishes no size: the cut-off
             "source": "timm ghostnet_100.in1k",
             "license": "Apache-2.0",
             "top1": 73.96, "top5": 91.54,           # ImageNet accuracy as published (top5 optional)
             "input_size": 224, "crop_pct": 0.875,    # the source's evaluation transform (optional;
             "interpolation": "bicubic",              #  the family's where absent): keras-hub presets and
             "mean": [0.485, 0.456, 0.406],           #  `evaluate` apply exactly this
             "std": [0.229, 0.224, 0.225]}

An entry without a published hash cannot be written: `hash` is required. `weights=<tag>` downloads the
file once, checks its hash, converts it in numpy (no torch) into the model with the top and caches the
result as a `.weights.h5` beside it; later calls read that cache without touching the network. The same
file serves include_top=False (loaded by layer name).

Which registry is read: the `registry_path` argument, else `$KERAS_TINYNET_WEIGHTS_REGISTRY`, else the
one shipped in `keras_tinynet/resources/`. Where a file is fetched from: `$KERAS_TINYNET_WEIGHTS_URL`
(a mirror: `<base>/<file>`; `file://` works too), else the entry's `url`. Where it is cached:
`<cache_dir>/models/keras_tinynet/`, with `cache_dir` the argument, else `$KERAS_HOME` (read at call
time), else `~/.keras` as Keras does. This module does not import Keras.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import urllib.parse
from importlib import resources

from keras_tinynet.files import file_hash
from keras_tinynet.presets import PRESETS
from keras_tinynet.spec import IMAGENET_PREPROCESSING, INTERPOLATIONS, MIN_SIZE, Preprocessing
from keras_tinynet.weights.download import HASH_ALGORITHMS, DownloadError, download, is_regular_file

REGISTRY_ENV = "KERAS_TINYNET_WEIGHTS_REGISTRY"
MIRROR_ENV = "KERAS_TINYNET_WEIGHTS_URL"
FORMAT = 2
CACHE_SUBDIR = os.path.join("models", "keras_tinynet")
URL_SCHEMES = ("http", "https", "file", "ftp")
# How a source file is read and which names it uses (keras_tinynet.weights.conversion reads each).
SOURCE_FORMATS = {
    "timm_safetensors": ".safetensors",  # a timm state dict
    "kcam_h5": ".h5",  # a keras_cv_attention_models Keras 2 file
    "keras_weights_h5": ".weights.h5",  # this package's own layer names
}
# No ImageNet checkpoint of these was ever published (the paper released none; timm has none).
NEVER_PUBLISHED = tuple(name for name in ("ghostnet_a", "ghostnet_b", "ghostnet_c", "ghostnet_d") if name in PRESETS)

_REQUIRED = ("file", "url", "format", "hash_algorithm", "hash", "size", "source", "license", "top1")
_OPTIONAL = ("max_size", "top5", "input_size", "crop_pct", "interpolation", "mean", "std", "notes")
_TRANSFORM = tuple(field.name for field in dataclasses.fields(Preprocessing))  # crop_pct, interpolation, mean, std
_HEX_LENGTH = {"sha256": 64, "md5": 32}
_TAG = re.compile(r"[a-z][a-z0-9_]*")


class WeightsDownloadError(DownloadError):
    """Registered weights could not be fetched or failed verification."""


@dataclasses.dataclass(frozen=True)
class ResolvedEntry:
    """A registry entry with the URL it will be fetched from (mirror applied)."""

    variant: str
    tag: str
    url: str
    entry: dict

    @property
    def what(self) -> str:
        return f"the {self.tag!r} weights of {self.variant!r}"


def is_tag(weights) -> bool:
    """Whether a `weights=` value names a registry tag ("imagenet", "imagenet_ssld") rather than a file."""
    return isinstance(weights, str) and bool(_TAG.fullmatch(weights))


def registry_location(registry_path: str | os.PathLike | None = None) -> str:
    """Where the registry is read from: the argument, `$KERAS_TINYNET_WEIGHTS_REGISTRY` or the package."""
    if registry_path is not None:
        return os.fspath(registry_path)
    return os.environ.get(REGISTRY_ENV) or "keras_tinynet/resources/weights_registry.json (shipped)"


def load_registry(registry_path: str | os.PathLike | None = None) -> dict:
    """Reads and validates a registry; returns `{variant: {tag: entry}}`."""
    path = os.fspath(registry_path) if registry_path is not None else os.environ.get(REGISTRY_ENV)
    if path:
        where = f"{path!r}" + ("" if registry_path is not None else f" (from ${REGISTRY_ENV})")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Weights registry {where} not found.")
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    else:
        where = "keras_tinynet/resources/weights_registry.json"
        text = resources.files("keras_tinynet").joinpath("resources/weights_registry.json").read_text()
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"Weights registry {where} is not valid JSON: {error}.") from None
    return validate_registry(document, where)


def validate_registry(document, where: str = "<registry>") -> dict:
    """Checks a registry document; returns its `weights` mapping."""
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError(
            f"Weights registry {where}: `format` must be {FORMAT}; received "
            f"{document.get('format') if isinstance(document, dict) else document!r}."
        )
    weights = document.get("weights")
    if not isinstance(weights, dict):
        raise ValueError(f"Weights registry {where}: `weights` must be an object; received {weights!r}.")
    for variant, tags in weights.items():
        if variant not in PRESETS:
            raise ValueError(f"Weights registry {where}: unknown variant {variant!r}; allowed: {', '.join(PRESETS)}.")
        if variant in NEVER_PUBLISHED:
            raise ValueError(
                f"Weights registry {where}: {variant!r} has no published checkpoint; an entry for it cannot "
                "name a published source and hash."
            )
        if not isinstance(tags, dict) or not tags or not all(isinstance(t, str) and _TAG.fullmatch(t) for t in tags):
            raise ValueError(
                f"Weights registry {where}: weights[{variant!r}] must map tags (lowercase words such as "
                f"'imagenet') to entries; received {tags!r}."
            )
        for tag, entry in tags.items():
            validate_entry(entry, f"{where}: weights[{variant!r}][{tag!r}]")
    return weights


def validate_entry(entry, where: str) -> None:
    """Checks one entry (see the module docstring for its fields)."""

    def bad(key, must):
        raise ValueError(f"Weights registry {where}[{key!r}] must be {must}; received {entry.get(key)!r}.")

    if not isinstance(entry, dict):
        raise ValueError(f"Weights registry {where} must be an object; received {entry!r}.")
    for key in _REQUIRED:
        if key not in entry:
            raise ValueError(f"Weights registry {where} lacks {key!r}; an entry needs {', '.join(_REQUIRED)}.")
    unknown = set(entry) - set(_REQUIRED) - set(_OPTIONAL)
    if unknown:
        raise ValueError(
            f"Weights registry {where} has unknown key(s) {sorted(unknown)}; "
            f"allowed: {', '.join(_REQUIRED + _OPTIONAL)}."
        )
    if entry["format"] not in SOURCE_FORMATS:
        bad("format", f"one of {tuple(SOURCE_FORMATS)}")
    file = entry["file"]
    suffix = SOURCE_FORMATS[entry["format"]]
    if not isinstance(file, str) or not file.endswith(suffix) or "/" in file or "\\" in file or file.startswith("."):
        bad("file", f"a plain file name ending with {suffix!r} (the {entry['format']} format)")
    if entry["url"] is not None and (not isinstance(entry["url"], str) or not has_scheme(entry["url"])):
        bad("url", f"null or a URL with one of the schemes {URL_SCHEMES}")
    if entry["hash_algorithm"] not in HASH_ALGORITHMS:
        bad("hash_algorithm", f"one of {HASH_ALGORITHMS} (the hash the source publishes)")
    length = _HEX_LENGTH[entry["hash_algorithm"]]
    if not isinstance(entry["hash"], str) or not re.fullmatch(f"[0-9a-f]{{{length}}}", entry["hash"]):
        bad("hash", f"{length} lowercase hexadecimal digits (a published {entry['hash_algorithm']})")
    for key in ("size", "max_size"):
        value = entry.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            bad(key, "null or a positive number of bytes")
    if entry["size"] is None and entry.get("max_size") is None:
        bad("max_size", "a positive number of bytes where `size` is null (the source publishes no size)")
    for key in ("source", "license"):
        if not isinstance(entry[key], str) or not entry[key]:
            bad(key, "a non-empty string")
    for key in ("top1", "top5"):
        value = entry.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 100
        ):
            bad(key, "null or a percentage in (0, 100]")
    crop_pct = entry.get("crop_pct", 1.0)
    if isinstance(crop_pct, bool) or not isinstance(crop_pct, (int, float)) or not 0 < crop_pct <= 1:
        bad("crop_pct", "a fraction in (0, 1]")
    if entry.get("interpolation", INTERPOLATIONS[0]) not in INTERPOLATIONS:
        bad("interpolation", f"one of {INTERPOLATIONS}")
    input_size = entry.get("input_size", MIN_SIZE)
    if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < MIN_SIZE:
        bad("input_size", f"an integer >= {MIN_SIZE} (pixels)")
    for key in ("mean", "std"):
        value = entry.get(key, [1.0, 1.0, 1.0])
        if not isinstance(value, list) or len(value) != 3 or not all(_positive_number(v) for v in value):
            bad(key, "a list of 3 positive numbers (per RGB channel, on the [0, 1] scale)")


def _positive_number(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and value > 0


def resolve_entry(variant: str, tag: str, registry_path: str | os.PathLike | None = None) -> ResolvedEntry:
    """The entry of `variant` and `tag` and the URL it is fetched from; a one-line ValueError where none exists."""
    weights = load_registry(registry_path)
    entry = weights.get(variant, {}).get(tag)
    if entry is None:
        raise ValueError(no_entry_message(weights, variant, tag, registry_path))
    mirror = os.environ.get(MIRROR_ENV)
    if mirror:
        if not has_scheme(mirror):
            raise ValueError(
                f"${MIRROR_ENV} must be a base URL with one of the schemes {URL_SCHEMES} "
                f"(the folder that holds the weight files); received {mirror!r}."
            )
        url = mirror.rstrip("/") + "/" + urllib.parse.quote(entry["file"])
    elif entry["url"] is None:
        raise ValueError(
            f"The registry entry weights={tag!r} of {variant!r} has no url (file {entry['file']!r} is not "
            f"published); set ${MIRROR_ENV} to a base URL that holds it."
        )
    else:
        url = entry["url"]
    return ResolvedEntry(variant, tag, url, entry)


def published_preprocessing(variant: str, tag: str, registry_path: str | os.PathLike | None = None) -> Preprocessing:
    """The eval transform the weights `tag` of `variant` were published with: the entry's `crop_pct`,
    `interpolation`, `mean` and `std`, the family's where the entry carries none. Their published top-1
    needs exactly this."""
    entry = resolve_entry(variant, tag, registry_path).entry
    return dataclasses.replace(
        IMAGENET_PREPROCESSING,
        **{key: tuple(entry[key]) if key in ("mean", "std") else entry[key] for key in _TRANSFORM if key in entry},
    )


def no_entry_message(weights: dict, variant: str, tag: str, registry_path=None) -> str:
    """Why `weights=tag` does not exist for `variant`, and what does."""
    own = sorted(weights.get(variant, {}))
    if variant in NEVER_PUBLISHED:
        reason = (
            f"no ImageNet checkpoint of {variant!r} (GhostNet-A..D) was ever published; train one "
            "(keras_tinynet.training) or pass weights=None or the path of a weights file"
        )
    elif own:
        reason = f"{variant!r} has weights={' or '.join(map(repr, own))}"
    else:
        reason = f"no weights are registered for {variant!r}"
    tags = sorted({t for tags in weights.values() for t in tags})
    registered = ", ".join(f"{name} ({', '.join(sorted(tags))})" for name, tags in sorted(weights.items())) or "none"
    if tag not in tags:
        reason = f"unknown tag weights={tag!r} ({reason})"
    return (
        f"No weights={tag!r} for model {variant!r}: {reason}. Registered in {registry_location(registry_path)}: "
        f"{registered}."
    )


def cache_folder(cache_dir: str | os.PathLike | None = None) -> str:
    if cache_dir is not None:
        base = os.path.expanduser(os.fspath(cache_dir))
    elif os.environ.get("KERAS_HOME"):
        base = os.path.expanduser(os.environ["KERAS_HOME"])
    else:
        home = os.path.expanduser("~")
        # Keras' own rule when $KERAS_HOME is not set.
        base = os.path.join(home if os.access(home, os.W_OK) else "/tmp", ".keras")
    return os.path.join(base, CACHE_SUBDIR)


def source_path(resolved: ResolvedEntry, cache_dir=None) -> str:
    return os.path.join(cache_folder(cache_dir), resolved.entry["file"])


def converted_path(resolved: ResolvedEntry, cache_dir=None) -> str:
    """The converted file beside the source; its name carries the source's hash, so a new source is converted anew."""
    entry = resolved.entry
    return os.path.join(cache_folder(cache_dir), f"{resolved.variant}_{resolved.tag}-{entry['hash'][:12]}.weights.h5")


def fetch(resolved: ResolvedEntry, cache_dir=None, timeout: float | None = None) -> str:
    """The path of the verified source file in the cache, downloaded once (a corrupt or linked copy is replaced)."""
    entry = resolved.entry
    target = source_path(resolved, cache_dir)
    if is_regular_file(target) and file_hash(target, entry["hash_algorithm"]) == entry["hash"]:
        return target
    os.makedirs(os.path.dirname(target), exist_ok=True)
    try:
        return download(
            resolved.url,
            target,
            algorithm=entry["hash_algorithm"],
            expected_hash=entry["hash"],
            size=entry["size"],
            max_size=entry.get("max_size"),
            what=resolved.what,
            timeout=timeout,
        )
    except DownloadError as error:
        hint = "Offline or behind a firewall? " if error.unreachable else ""
        raise WeightsDownloadError(
            f"{error} {hint}Set ${MIRROR_ENV} to a base URL (or file:// folder) that holds {entry['file']!r}, or "
            "pass weights=<path of the file>.",
            unreachable=error.unreachable,
        ) from None


def has_scheme(url: str) -> bool:
    parsed = urllib.parse.urlsplit(url)
    return parsed.scheme in URL_SCHEMES and bool(parsed.netloc or parsed.scheme == "file")
