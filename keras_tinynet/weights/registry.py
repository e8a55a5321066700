"""The ImageNet weights registry and the verified download behind `weights="imagenet"`.

The registry is a JSON file::

    {"format": 1,
     "weights": {"<variant>": {"top": ENTRY, "notop": ENTRY}}}

    ENTRY = {"file": "ghostnet_100.weights.h5",   # name in the cache and on the server
             "url": "https://.../ghostnet_100.weights.h5",  # or null: then only a mirror can serve it
             "sha256": "<64 hex digits>",
             "size": 20856448,                    # bytes (optional; names truncation in errors)
             "source": "timm:ghostnet_100.in1k",  # the checkpoint it was made from
             "license": "apache-2.0",
             "top1": 73.97}                       # ImageNet top-1 in %, or null where not measured

Which registry is read: the `registry_path` argument, else the file named by the environment
variable `KERAS_TINYNET_WEIGHTS_REGISTRY`, else the one shipped in `keras_tinynet/resources/`.
Where a file is fetched from: `KERAS_TINYNET_WEIGHTS_URL` (a mirror: `<base>/<file>`, for
air-gapped users; `file://` works too), else the entry's `url`.
Where it is cached: `<cache_dir>/models/keras_tinynet/<file>`, with `cache_dir` the argument, else
`$KERAS_HOME` (read at call time), else `~/.keras` as Keras does.

Every file is checked against its sha256 before it is used. A file that fails (cached or just
downloaded) is removed and fetched again once; a second failure, an HTTP error or an unreachable
server raises `WeightsDownloadError` naming the variant and the URL. Nothing here falls back to
random weights. This module imports Keras only when it downloads.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import urllib.error
import urllib.parse
from importlib import resources

from keras_tinynet.files import sha256_file
from keras_tinynet.spec import PRESETS

REGISTRY_ENV = "KERAS_TINYNET_WEIGHTS_REGISTRY"
MIRROR_ENV = "KERAS_TINYNET_WEIGHTS_URL"
FORMAT = 1
KINDS = ("top", "notop")
CACHE_SUBDIR = os.path.join("models", "keras_tinynet")
URL_SCHEMES = ("http", "https", "file", "ftp")

_REQUIRED = ("file", "url", "sha256", "source", "license", "top1")
_OPTIONAL = ("size", "notes")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

log = logging.getLogger(__name__)


class WeightsDownloadError(OSError):
    """Registered weights could not be fetched or failed verification."""


@dataclasses.dataclass(frozen=True)
class ResolvedEntry:
    """A registry entry with the URL it will be fetched from (mirror applied)."""

    variant: str
    include_top: bool
    file: str
    url: str
    sha256: str
    size: int | None
    entry: dict


def kind_of(include_top: bool) -> str:
    return "top" if include_top else "notop"


def registry_location(registry_path: str | os.PathLike | None = None) -> str:
    """Where the registry is read from: the argument, `$KERAS_TINYNET_WEIGHTS_REGISTRY` or the package."""
    if registry_path is not None:
        return os.fspath(registry_path)
    return os.environ.get(REGISTRY_ENV) or "keras_tinynet/resources/weights_registry.json (shipped)"


def load_registry(registry_path: str | os.PathLike | None = None) -> dict:
    """Reads and validates a registry; returns `{variant: {"top"|"notop": entry}}`."""
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
    for variant, kinds in weights.items():
        if variant not in PRESETS:
            raise ValueError(f"Weights registry {where}: unknown variant {variant!r}; allowed: {', '.join(PRESETS)}.")
        if not isinstance(kinds, dict) or not kinds or set(kinds) - set(KINDS):
            raise ValueError(
                f"Weights registry {where}: weights[{variant!r}] must map some of {KINDS} to entries; "
                f"received {kinds!r}."
            )
        for kind, entry in kinds.items():
            validate_entry(entry, f"{where}: weights[{variant!r}][{kind!r}]")
    return weights


def validate_entry(entry, where: str) -> None:
    """Checks one entry (see the module docstring for its fields)."""

    def bad(key, must):
        value = entry.get(key) if isinstance(entry, dict) else entry
        raise ValueError(f"Weights registry {where}[{key!r}] must be {must}; received {value!r}.")

    if not isinstance(entry, dict):
        raise ValueError(f"Weights registry {where} must be an object; received {entry!r}.")
    for key in _REQUIRED:
        if key not in entry:
            raise ValueError(f"Weights registry {where} lacks {key!r}; an entry needs {', '.join(_REQUIRED)}.")
    unknown = set(entry) - set(_REQUIRED) - set(_OPTIONAL)
    if unknown:
        raise ValueError(
            f"Weights registry {where} has unknown key(s) {sorted(unknown)}; allowed: {', '.join(_REQUIRED + _OPTIONAL)}."
        )
    file = entry["file"]
    if (
        not isinstance(file, str)
        or not file.endswith(".weights.h5")
        or "/" in file
        or "\\" in file
        or file.startswith(".")
    ):
        bad("file", "a plain file name ending with '.weights.h5'")
    if entry["url"] is not None and (not isinstance(entry["url"], str) or not has_scheme(entry["url"])):
        bad("url", f"null or a URL with one of the schemes {URL_SCHEMES}")
    if not isinstance(entry["sha256"], str) or not _SHA256.match(entry["sha256"]):
        bad("sha256", "64 lowercase hexadecimal digits")
    for key in ("source", "license"):
        if not isinstance(entry[key], str) or not entry[key]:
            bad(key, "a non-empty string")
    top1 = entry["top1"]
    if top1 is not None and (isinstance(top1, bool) or not isinstance(top1, (int, float)) or not 0 < top1 <= 100):
        bad("top1", "null or a percentage in (0, 100]")
    size = entry.get("size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size <= 0):
        bad("size", "a positive number of bytes")


def registry(registry_path: str | os.PathLike | None = None) -> dict:
    """The weights registry in use: variant -> "top"/"notop" -> entry."""
    return load_registry(registry_path)


def resolve_entry(variant: str, include_top: bool, registry_path: str | os.PathLike | None = None) -> ResolvedEntry:
    """The registry entry of `variant` and the URL it is fetched from; ValueError where none is registered."""
    weights = load_registry(registry_path)
    kind = kind_of(include_top)
    entry = weights.get(variant, {}).get(kind)
    if entry is None:
        available = sorted(f"{name} ({', '.join(kinds)})" for name, kinds in weights.items()) or ["none"]
        raise ValueError(
            f"No ImageNet weights are registered for {variant!r} with include_top={include_top} in the "
            f"weights registry {registry_location(registry_path)}. Registered: {', '.join(available)}. "
            "No public ImageNet checkpoint of GhostNet-A..D exists; train one with scripts/train.py, convert "
            "a timm GhostNet checkpoint with scripts/convert_weights.py (see weights/README.md), or pass "
            "weights=None for random initialization."
        )
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
            f"The registry entry of {variant!r} with include_top={include_top} has no url (file "
            f"{entry['file']!r} is not published); set ${MIRROR_ENV} to a base URL that holds it."
        )
    else:
        url = entry["url"]
    return ResolvedEntry(variant, include_top, entry["file"], url, entry["sha256"], entry.get("size"), entry)


def cache_path(file: str, cache_dir: str | os.PathLike | None = None) -> str:
    return os.path.join(_cache_dir(cache_dir), CACHE_SUBDIR, file)


def fetch(resolved: ResolvedEntry, cache_dir: str | os.PathLike | None = None) -> str:
    """Returns the path of the verified file in the cache, downloading it through keras.utils.get_file."""
    base = _cache_dir(cache_dir)
    target = os.path.join(base, CACHE_SUBDIR, resolved.file)
    os.makedirs(os.path.dirname(target), exist_ok=True)  # get_file swaps a missing folder for /tmp
    if not os.access(base, os.W_OK):
        raise WeightsDownloadError(
            f"The Keras cache folder {base!r} is not writable; set KERAS_HOME to a writable folder to "
            f"download the ImageNet weights of {resolved.variant!r} from {resolved.url}."
        )
    what = f"the ImageNet weights of {resolved.variant!r} (include_top={resolved.include_top})"
    retries = 1
    if os.path.exists(target):
        problem = _verification_problem(target, resolved)
        if problem is None:
            return target
        log.warning("The cached file %s is corrupt (%s); fetching it again from %s.", target, problem, resolved.url)
        os.remove(target)
        retries -= 1

    import keras  # only here: the registry itself does not need Keras

    while True:
        try:
            path = keras.utils.get_file(
                fname=resolved.file,
                origin=resolved.url,
                file_hash=resolved.sha256,
                hash_algorithm="sha256",
                cache_subdir=CACHE_SUBDIR,
                cache_dir=base,
            )
            problem = None if os.path.abspath(path) == os.path.abspath(target) else f"saved at {path}"
            if problem is None:
                problem = _verification_problem(target, resolved)
        except ValueError:
            # get_file's hash check failed; it leaves the bad file in the cache.
            if not os.path.exists(target):
                raise
            problem = _verification_problem(target, resolved) or "get_file rejected its hash"
        except Exception as error:  # get_file turns every urllib error into a bare Exception
            cause = error.__context__
            if isinstance(cause, urllib.error.ContentTooShortError) and retries > 0:
                retries -= 1
                log.warning("The download of %s from %s was cut short; fetching it again.", resolved.file, resolved.url)
                continue
            raise WeightsDownloadError(
                f"Could not download {what} from {resolved.url}: {_describe(error)}. Offline or behind a "
                f"firewall? Set ${MIRROR_ENV} to a base URL (or file:// folder) that holds {resolved.file!r}, "
                "or pass weights=<path of the file>."
            ) from error
        if problem is None:
            return target
        if os.path.exists(target):
            os.remove(target)
        if retries > 0:
            retries -= 1
            log.warning(
                "The file downloaded from %s failed verification (%s); fetching it again.", resolved.url, problem
            )
            continue
        raise WeightsDownloadError(
            f"The file downloaded for {what} from {resolved.url} failed verification: {problem}. It was "
            f"removed from the cache. The server (or the mirror set by ${MIRROR_ENV}) holds a different or "
            "truncated file; publish the registered one, or pass weights=<path of a verified file>."
        )


def fetch_weights(
    variant: str,
    include_top: bool,
    *,
    registry_path: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> str:
    """Resolves `variant`'s registered weights and returns the path of the verified cached file."""
    return fetch(resolve_entry(variant, include_top, registry_path), cache_dir)


def _cache_dir(cache_dir) -> str:
    if cache_dir is not None:
        return os.path.expanduser(os.fspath(cache_dir))
    if os.environ.get("KERAS_HOME"):
        return os.path.expanduser(os.environ["KERAS_HOME"])
    home = os.path.expanduser("~")
    # Keras' own rule when $KERAS_HOME is not set.
    return os.path.join(home if os.access(home, os.W_OK) else "/tmp", ".keras")


def _verification_problem(path: str, resolved: ResolvedEntry) -> str | None:
    actual = sha256_file(path)
    if actual == resolved.sha256:
        return None
    size = os.path.getsize(path)
    problem = f"sha256 {actual} ({size} bytes) where the registry says {resolved.sha256}"
    if resolved.size is not None:
        problem += f" ({resolved.size} bytes)"
        if size < resolved.size:
            problem += f"; the file is truncated ({size} of {resolved.size} bytes)"
    return problem


def _describe(error: Exception) -> str:
    cause = error.__context__
    if isinstance(cause, urllib.error.HTTPError):
        return f"HTTP error {cause.code} ({cause.reason})"
    if isinstance(cause, urllib.error.ContentTooShortError):
        return f"the transfer was cut short ({cause.reason})"
    if isinstance(cause, urllib.error.URLError):
        return f"the server could not be reached ({cause.reason})"
    return str(error)


def has_scheme(url: str) -> bool:
    parsed = urllib.parse.urlsplit(url)
    return parsed.scheme in URL_SCHEMES and bool(parsed.netloc or parsed.scheme == "file")
