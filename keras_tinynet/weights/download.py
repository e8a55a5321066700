"""The one download function behind `weights=<tag>`: timeouts, a size cap, a hash check, no symlinks followed.

`keras.utils.get_file` (urlretrieve) has no timeout and no size limit, leaves a file that failed its hash
in the cache and writes through a symlink planted at the destination. Here a transfer:
- gives up when connecting or any read waits longer than `timeout` seconds (argument, else
  `$KERAS_TINYNET_DOWNLOAD_TIMEOUT`, else 60);
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
import urllib.error
import urllib.request

from keras_tinynet.files import staged_file

TIMEOUT_ENV = "KERAS_TINYNET_DOWNLOAD_TIMEOUT"
DEFAULT_TIMEOUT = 60.0
HASH_ALGORITHMS = ("sha256", "md5")  # md5 only where the source publishes nothing stronger
CHUNK = 1 << 16


class DownloadError(OSError):
    """A file could not be fetched, or what was fetched is not the expected file."""


def download_timeout(timeout: float | None = None) -> float:
    """Seconds to wait for a connection or a read: the argument, else `$KERAS_TINYNET_DOWNLOAD_TIMEOUT`, else 60."""
    where = "`timeout`"
    if timeout is None:
        text = os.environ.get(TIMEOUT_ENV)
        if not text:
            return DEFAULT_TIMEOUT
        where = f"${TIMEOUT_ENV}"
        try:
            timeout = float(text)
        except ValueError:
            timeout = text
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"{where} must be a positive number of seconds; received {timeout!r}.")
    return float(timeout)


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
) -> str:
    """Fetches `url` into `destination` after checking its size and hash; returns the destination.

    `what` names the file in errors (the model and tag). The transfer stops a little above `size`, or at
    `max_size` where the source publishes no size. Nothing is left at `destination` when the transfer
    fails, is too large or has another hash.
    """
    if algorithm not in HASH_ALGORITHMS:
        raise ValueError(f"`algorithm` must be one of {HASH_ALGORITHMS}; received algorithm={algorithm!r}.")
    seconds = download_timeout(timeout)
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
                while chunk := response.read(CHUNK):
                    received += len(chunk)
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
                f"Could not download {what} from {url}: the server could not be reached ({error.reason})."
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
        f"Could not download {what} from {url}: no answer for {seconds:g} s (set `timeout` or ${TIMEOUT_ENV})."
    )


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
