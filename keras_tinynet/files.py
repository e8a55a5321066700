"""Atomic file writes: a reader sees the old file or the whole new one, never a half-written one.

Shared by the exports, the training run's JSON files, converted checkpoints and the benchmarks'
results. Standard library only.
"""

from __future__ import annotations

import contextlib
import os
import tempfile


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
    handle, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.partial-", suffix=suffix, dir=directory)
    os.close(handle)
    try:
        yield temporary
        make_publishable(temporary)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def write_atomically(path: str | os.PathLike, data: bytes | str) -> None:
    """Writes `data` (text as UTF-8) to `path` through a synced staged file."""
    with staged_file(path) as temporary, open(temporary, "wb") as stream:
        stream.write(data.encode("utf-8") if isinstance(data, str) else data)
        stream.flush()
        os.fsync(stream.fileno())
