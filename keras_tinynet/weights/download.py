"""The one download function behind `weights=<tag>`: time limits, a size cap, a hash check, no symlinks followed.

`keras.utils.get_file` (urlretrieve) has no timeout and no size limit, leaves a file that failed its hash
in the cache and writes through a symlink planted at the destination. Here a transfer:
- gives up when connecting or any read waits longer than `timeout` seconds (argument, else
  `$KERAS_TINYNET_DOWNLOAD_TIMEOUT`, else 60);
- gives up when the whole transfer takes longer than `deadline` seconds (argument, else
  `$KERAS_TINYNET_DOWNLOAD_DEADLINE`, else 3600), and when fewer than `min_rate` bytes per second arrive
  over any RATE_WINDOW (30) seconds (argument, else `$KERAS_TINYNET_DOWNLOAD_MIN_RATE`, else 1024; 0 turns
  it off): a server that trickles a byte now and then cannot keep a download alive. Both are checked after
  each read, so a stalled read can add up to `timeout` to them;
- is aborted as soon as it exceeds the expected size plus a small margin (a server streaming far more
  than the registry announces cannot fill the disk);
- is written to a fresh staged file beside the destination (created with O_EXCL, never through a link)
  that is hashed and only then renamed onto the destination (`os.replace` replaces a link, not its target);
- shows a progress bar only where stderr is a terminal.
Standard library only.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import time
import urllib.error
import urllib.request

from keras_tinynet.files import staged_file

TIMEOUT_ENV = "KERAS_TINYNET_DOWNLOAD_TIMEOUT"
DEADLINE_ENV = "KERAS_TINYNET_DOWNLOAD_DEADLINE"
MIN_RATE_ENV = "KERAS_TINYNET_DOWNLOAD_MIN_RATE"
DEFAULT_TIMEOUT = 60.0
DEFAULT_DEADLINE = 3600.0  # an hour: the largest registered file (30 MB) at 8 KB/s
DEFAULT_MIN_RATE = 1024.0  # bytes per second over RATE_WINDOW
RATE_WINDOW = 30.0
HASH_ALGORITHMS = ("sha256", "md5")  # md5 only where the source publishes nothing stronger
CHUNK = 1 << 16


class DownloadError(OSError):
    """A file could not be fetched, or what was fetched is not the expected file. `unreachable`: no server
    answered (offline, a firewall, a wrong host), as opposed to a server that answered with an error or a
    file that is not the one expected."""

    def __init__(self, message: str, unreachable: bool = False):
        super().__init__(message)
        self.unreachable = unreachable


def _setting(value, name: str, env: str, default: float, unit: str, allow_zero: bool = False) -> float:
    """A limit from its argument, else its environment variable, else its default; checked either way."""
    where = f"`{name}`"
    if value is None:
        text = os.environ.get(env)
        if not text:
            return default
        where = f"${env}"
        try:
            value = float(text)
        except ValueError:
            value = text
    valid = (
        not isinstance(value, bool) and isinstance(value, (int, float)) and (value >= 0 if allow_zero else value > 0)
    )
    if not valid or value != value or value == float("inf"):
        must = "a non-negative number of" if allow_zero else "a positive number of"
        raise ValueError(
            f"{where} must be {must} {unit}{' (0: no minimum)' if allow_zero else ''}; received {value!r}."
        )
    return float(value)


def download_timeout(timeout: float | None = None) -> float:
    """Seconds to wait for a connection or a read: the argument, else `$KERAS_TINYNET_DOWNLOAD_TIMEOUT`, else 60."""
    return _setting(timeout, "timeout", TIMEOUT_ENV, DEFAULT_TIMEOUT, "seconds")


def download_deadline(deadline: float | None = None) -> float:
    """Seconds the whole transfer may take: the argument, else `$KERAS_TINYNET_DOWNLOAD_DEADLINE`, else 3600."""
    return _setting(deadline, "deadline", DEADLINE_ENV, DEFAULT_DEADLINE, "seconds")


def download_min_rate(min_rate: float | None = None) -> float:
    """Fewest bytes per second over RATE_WINDOW: the argument, else `$KERAS_TINYNET_DOWNLOAD_MIN_RATE`, else 1024."""
    return _setting(min_rate, "min_rate", MIN_RATE_ENV, DEFAULT_MIN_RATE, "bytes per second", allow_zero=True)


def size_limit(size: int) -> int:
    """The most bytes accepted for a file announced as `size` bytes: 1% (at least 64 KiB) more."""
    return size + max(size // 100, 1 << 16)


def is_regular_file(path: str | os.PathLike) -> bool:
    """True for a regular file that is not a symlink (a planted link is never read as the cached file)."""
    return os.path.isfile(path) and not os.path.islink(path)


def download(
    url: str,
    destination: str | os.PathLike,
    *,
    algorithm: str,
    expected_hash: str,
    size: int | None,
    what: str,
    max_size: int | None = None,
    timeout: float | None = None,
    deadline: float | None = None,
    min_rate: float | None = None,
) -> str:
    """Fetches `url` into `destination` after checking its size and hash; returns the destination.

    `what` names the file in errors (the model and tag). The transfer stops a little above `size`, or at
    `max_size` where the source publishes no size. Nothing is left at `destination` when the transfer
    fails, is too large or has another hash.
    """
    if algorithm not in HASH_ALGORITHMS:
        raise ValueError(f"`algorithm` must be one of {HASH_ALGORITHMS}; received algorithm={algorithm!r}.")
    seconds = download_timeout(timeout)
    pace = _Pace(what, url, download_deadline(deadline), download_min_rate(min_rate))
    if size is None and max_size is None:
        raise ValueError(f"Downloading {what} needs its `size` or a `max_size`; received neither.")
    limit = size_limit(size) if size is not None else max_size
    destination = os.path.abspath(os.fspath(destination))
    with staged_file(destination) as staged:
        digest = hashlib.new(algorithm)
        received = 0
        try:
            with urllib.request.urlopen(url, timeout=seconds) as response, open(staged, "wb") as out:
                progress = _Progress(os.path.basename(destination), size or max_size)
                read = getattr(response, "read1", response.read)  # what has arrived: a trickle cannot block it
                while chunk := read(CHUNK):
                    received += len(chunk)
                    pace.check(received)
                    if received > limit:
                        raise DownloadError(
                            f"Aborted the download of {what} from {url}: the server sent more than {limit} bytes "
                            f"where the registry expects {size or f'at most {max_size}'}. Nothing was cached."
                        )
                    digest.update(chunk)
                    out.write(chunk)
                    progress.update(received)
                progress.close()
                out.flush()
                os.fsync(out.fileno())
        except urllib.error.HTTPError as error:
            raise DownloadError(
                f"Could not download {what} from {url}: HTTP error {error.code} ({error.reason})."
            ) from None
        except urllib.error.URLError as error:
            if isinstance(error.reason, TimeoutError):
                raise _timed_out(what, url, seconds) from None
            raise DownloadError(
                f"Could not download {what} from {url}: the server could not be reached ({error.reason}).",
                unreachable=True,
            ) from None
        except TimeoutError:
            raise _timed_out(what, url, seconds) from None
        except http.client.IncompleteRead as error:
            raise DownloadError(
                f"Could not download {what} from {url}: the transfer was cut short ({received + len(error.partial)} "
                f"bytes arrived, {error.expected} more were announced). Nothing was cached."
            ) from None
        except OSError as error:
            if isinstance(error, DownloadError):
                raise
            raise DownloadError(f"Could not download {what} from {url}: {error}.") from None
        actual = digest.hexdigest()
        if actual != expected_hash:
            problem = f" (only {received} of {size} bytes arrived)" if size and received < size else ""
            raise DownloadError(
                f"Refused the file downloaded for {what} from {url}: its {algorithm} is {actual} where the "
                f"registry says {expected_hash}{problem}. Nothing was cached."
            )
    return destination


def _timed_out(what: str, url: str, seconds: float) -> DownloadError:
    return DownloadError(
        f"Could not download {what} from {url}: no answer for {seconds:g} s (set `timeout` or ${TIMEOUT_ENV}).",
        unreachable=True,
    )


class _Pace:
    """The overall deadline and the minimum rate of one transfer (see the module docstring)."""

    def __init__(self, what: str, url: str, deadline: float, min_rate: float):
        self.what, self.url, self.deadline, self.min_rate = what, url, deadline, min_rate
        self.started = self.window_started = time.monotonic()
        self.window_bytes = 0

    def check(self, received: int) -> None:
        now = time.monotonic()
        if now - self.started > self.deadline:
            raise DownloadError(
                f"Aborted the download of {self.what} from {self.url}: it took longer than {self.deadline:g} s "
                f"({received} bytes arrived; set `deadline` or ${DEADLINE_ENV}). Nothing was cached."
            )
        elapsed = now - self.window_started
        if elapsed >= RATE_WINDOW:
            rate = (received - self.window_bytes) / elapsed
            if rate < self.min_rate:
                raise DownloadError(
                    f"Aborted the download of {self.what} from {self.url}: {rate:.1f} bytes/s over the last "
                    f"{elapsed:.0f} s, below the minimum of {self.min_rate:g} bytes/s (set `min_rate` or "
                    f"${MIN_RATE_ENV}; 0 turns the check off). Nothing was cached."
                )
            self.window_started, self.window_bytes = now, received


class _Progress:
    """A one-line progress bar on stderr, only when stderr is a terminal."""

    def __init__(self, name: str, total: int):
        self.name, self.total = name, total
        self.enabled = sys.stderr.isatty()
        self.shown = -1

    def update(self, received: int) -> None:
        percent = min(100, received * 100 // max(self.total, 1))
        if self.enabled and percent != self.shown:
            self.shown = percent
            bar = "#" * (percent // 4)
            sys.stderr.write(f"\rDownloading {self.name} [{bar:<25}] {percent:3d}% of {self.total / 1e6:.1f} MB")
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
