"""The file side the per-worker rings share (denials.py, detections.py): each worker maps
its ring beside its metrics (`<name><suffix>`, anonymous memory when there is no
directory), and the supervisor reads every ring in the directory at request time."""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable
from typing import Any


def open_ring(directory: str | None, name: str, suffix: str, size: int
              ) -> tuple[mmap.mmap, int | None]:
    """A zeroed ring of `size` bytes to write, and its file descriptor (None: anonymous)."""
    if directory is None:
        return mmap.mmap(-1, size), None
    fd = os.open(os.path.join(directory, name + suffix),
                 os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    os.ftruncate(fd, size)
    return mmap.mmap(fd, size), fd


def close_ring(mm: mmap.mmap, fd: int | None) -> None:
    mm.close()
    if fd is not None:
        os.close(fd)


def read_rings(directory: str, suffix: str, size: int,
               read_ring: Callable[[bytes], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The records of every ring in `directory` (exited workers' too), unordered; a ring
    that cannot be read is passed over."""
    records: list[dict[str, Any]] = []
    try:
        names = [n for n in os.listdir(directory) if n.endswith(suffix)]
    except OSError:
        names = []
    for name in names:
        try:
            with open(os.path.join(directory, name), "rb") as f:
                records.extend(read_ring(f.read(size)))
        except OSError:
            continue
    return records
