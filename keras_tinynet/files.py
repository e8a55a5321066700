"""Atomic writes: a reader sees the old file (or directory) or the whole new one, never a half-written one.

Shared by the exports, the training run's checkpoints and JSON files, converted weights and the
benchmarks' results, with the one sha256 helper. Standard library only.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import shutil
import tempfile

STAGING_MARK = ".partial-"  # in the name of every staged file and directory, until it is renamed into place
# A full disk, an exceeded quota or a failing device: what a staged write turns into a `WriteError`.
DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO)


class WriteError(OSError, ValueError):
    """A write that the disk refused (full, over quota, failing), in one line: the path, the bytes, the fix.

    A ValueError too, so that the command lines print it as one `error:` line instead of a traceback."""


def _write_error(error: BaseException, path: str, written: int) -> WriteError | None:
    """The `WriteError` for a staged write of `path` that failed with `error` after `written` bytes."""
    if not isinstance(error, OSError) or error.errno not in DISK_ERRORS:
        return None
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    failure = WriteError(
        f"Cannot write {path}: {os.strerror(error.errno)} after {written:,} bytes of it "
        f"({shutil.disk_usage(existing).free:,} bytes free there once they were removed); free space or write "
        "elsewhere. Nothing was replaced: what was there before is unchanged."
    )
    failure.errno = error.errno
    return failure


def _tree_bytes(root: str) -> int:
    return sum(
        os.path.getsize(os.path.join(directory, name)) for directory, _, names in os.walk(root) for name in names
    )


def umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def make_publishable(path: str) -> None:
    """Gives a staged directory tree or file the permissions of an ordinary one (mkdtemp/mkstemp make them
    private, 0700/0600, which a server running as another user, such as TF Serving, could not read)."""
    mask = umask()
    if os.path.isfile(path):
        os.chmod(path, 0o666 & ~mask)
        return
    for directory, _, files in os.walk(path):
        os.chmod(directory, 0o777 & ~mask)
        for file_name in files:
            os.chmod(os.path.join(directory, file_name), 0o666 & ~mask)


def fsync_dir(path: str) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def fsync_tree(root: str) -> None:
    for directory, _, files in os.walk(root):
        for file_name in files:
            with open(os.path.join(directory, file_name), "rb") as handle:
                os.fsync(handle.fileno())
        fsync_dir(directory)


@contextlib.contextmanager
def staged_file(path: str | os.PathLike, suffix: str = ""):
    """Yields a hidden temporary path beside `path` (ending with `suffix`, for writers that check it);
    renames it onto `path` when the block succeeds, and removes it when the block fails."""
    path = os.path.abspath(os.fspath(path))
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        prefix=f".{os.path.basename(path)}{STAGING_MARK}", suffix=suffix, dir=directory
    )
    os.close(handle)
    try:
        yield temporary
        make_publishable(temporary)
        os.replace(temporary, path)
    except BaseException as error:
        written = os.path.getsize(temporary) if os.path.exists(temporary) else 0
        if os.path.exists(temporary):
            os.remove(temporary)
        failure = _write_error(error, path, written)
        if failure is None:
            raise
        raise failure from error


def write_atomically(path: str | os.PathLike, data: bytes | str) -> None:
    """Writes `data` (text as UTF-8) to `path` through a synced staged file."""
    with staged_file(path) as temporary, open(temporary, "wb") as stream:
        stream.write(data.encode("utf-8") if isinstance(data, str) else data)
        stream.flush()
        os.fsync(stream.fileno())


@contextlib.contextmanager
def staged_directory(path: str | os.PathLike, replace: bool = False):
    """Yields a hidden temporary directory beside `path`; when the block succeeds, gives it ordinary
    permissions, syncs it and renames it onto `path` (an existing `path` only with `replace`). When the
    block fails, the staging directory is removed and `path` is left as it was."""
    path = os.path.abspath(os.fspath(path))
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}{STAGING_MARK}", dir=parent)
    try:
        yield staging
        make_publishable(staging)
        fsync_tree(staging)
        if os.path.exists(path):
            if not replace:
                raise FileExistsError(f"{path} already exists")
            shutil.rmtree(path)
        os.rename(staging, path)
        fsync_dir(parent)
    except BaseException as error:
        written = _tree_bytes(staging)
        shutil.rmtree(staging, ignore_errors=True)
        failure = _write_error(error, path, written)
        if failure is None:
            raise
        raise failure from error


def remove_stale_staging(directory: str | os.PathLike) -> list[str]:
    """Removes what killed writers left staged in `directory` (not below it); returns the removed paths.

    Call it only where no other writer can be at work (the training run holds its directory's lock)."""
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        return []
    removed = []
    for entry in os.listdir(directory):
        if entry.startswith(".") and STAGING_MARK in entry:
            full = os.path.join(directory, entry)
            if os.path.isdir(full) and not os.path.islink(full):
                shutil.rmtree(full, ignore_errors=True)
            else:
                os.remove(full)
            removed.append(full)
    return removed


class LockHeld(OSError):
    """Another process holds the lock; `holder` is the pid it wrote into the lock file ("" if none)."""

    def __init__(self, path: str, holder: str):
        super().__init__(errno.EWOULDBLOCK, f"{path} is locked by process {holder or '(unknown)'}")
        self.path, self.holder = path, holder


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike, wait: bool = False):
    """Holds an OS lock (flock) on `path` for the block: a file, created and given this process's pid, or an
    existing directory (locked as it is, nothing written). The kernel releases it when the process dies,
    so a killed holder never blocks the next one. Without `wait`, a held lock raises `LockHeld` at once."""
    path = os.fspath(path)
    is_directory = os.path.isdir(path)
    descriptor = os.open(path, os.O_RDONLY if is_directory else os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = "" if is_directory else os.pread(descriptor, 32, 0).decode("ascii", "replace").strip()
            raise LockHeld(path, holder) from None
        if not is_directory:
            os.ftruncate(descriptor, 0)
            os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def file_hash(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file (sha256, or e.g. the md5 a source publishes), read in 1 MiB chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
