"""Handing back the memory a loaded model no longer uses, so a worker's size is what its model needs.

transformers memory-maps a safetensors checkpoint: each weight starts as pages of the file, counted in the process's
resident memory once read. Converting the token models (bf16, int8), packing their Linear layers or moving them to a
GPU makes copies; the old weights are then dead, but the mapping stays (the codec and embeddings still read from it,
and on the machines measured it outlived even a copy of every tensor), so their pages stay resident. Measured with
bark-small (1.6 GB of float32): after packing in float32, 1.2 GB of the process's 2.6 GB were such dead file pages;
in bf16 1.7 GB of 2.7 GB. They are clean page cache, which the kernel could drop under pressure, but they count
against a worker's memory in every tool an operator reads. So `release_dead_weights` asks the kernel to drop them
(madvise MADV_PAGEOUT, which never changes what memory holds), and glibc to return freed heap (malloc_trim).
Both are Linux/glibc calls; elsewhere they are skipped.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import mmap
from collections.abc import Iterable
from typing import Any

MADV_PAGEOUT = 21  # Linux 5.4+: reclaim these pages now; an older kernel refuses it (EINVAL), which costs nothing

Span = tuple[int, int]  # [start, end) addresses


def tensor_spans(models: Iterable[Any]) -> set[Span]:
    """Where the storages of the parameters and buffers of `models` lie in memory (CPU tensors only). A storage,
    not the tensor: a view starts inside its storage, and tied weights share one."""
    storages = (
        tensor.untyped_storage()
        for model in models
        for tensor in (*model.parameters(), *model.buffers())
        if tensor.device.type == "cpu"
    )
    return {(storage.data_ptr(), storage.data_ptr() + storage.nbytes()) for storage in storages if storage.nbytes()}


def release_dead_weights(loaded: set[Span], models: Iterable[Any]) -> None:
    """Drop from this process the file pages of weights that were `loaded` and are no longer in `models`.

    Only whole pages inside a dead tensor that lie in a mapping of a file are touched: nothing else lives there, and a
    file mapping's addresses are never reused by the allocator while it exists."""
    dead = loaded - tensor_spans(models)
    files = file_mappings()
    page = mmap.PAGESIZE
    with contextlib.suppress(OSError, AttributeError):  # no C library with madvise here: keep the pages
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        for start, end in dead:
            first, last = -(-start // page) * page, end // page * page
            if last > first and any(low <= first and last <= high for low, high in files):
                libc.madvise(first, last - first, MADV_PAGEOUT)
    release_freed_heap()


def file_mappings() -> list[Span]:
    """This process's mappings of files (/proc/self/maps); none where there is no /proc."""
    try:
        lines = open("/proc/self/maps", encoding="ascii", errors="replace").read().splitlines()  # noqa: SIM115
    except OSError:
        return []
    spans = []
    for line in lines:
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5].startswith("/"):  # address perms offset device inode path
            low, high = fields[0].split("-")
            spans.append((int(low, 16), int(high, 16)))
    return spans


def release_freed_heap() -> None:
    """Hand freed heap memory back to the system. glibc keeps freed blocks in the process's heap; measured with
    bark-small, the process held 3187 MB after packing bf16 weights and 2709 MB after this. A no-op where the C
    library is not glibc."""
    # No C library found, or one without malloc_trim (musl, macOS): nothing to do.
    with contextlib.suppress(OSError, AttributeError, TypeError):
        ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim(0)
