"""``gc.data``: feeding numpy data to a graph — batch iteration (the define-and-run
counterpart of ``Dataset``/``DataLoader``: batches are numpy arrays for ``feed_dict``) and a
reader for the IDX files of MNIST and Fashion-MNIST that a user has on disk."""

from __future__ import annotations

import gzip
import os

import numpy as np

from .errors import GraphcError, ShapeError, user_location


class DataError(GraphcError, ValueError):
    """A data file that is missing, malformed or truncated."""


def batches(*arrays, batch_size, shuffle=False, seed=None, drop_last=False, epochs=1, shard=None):
    """Yield minibatches of ``arrays`` (sliced together along their first axis).

    One array gives one array per batch; several give a tuple per batch. ``shuffle`` draws
    a new order every epoch from ``np.random.default_rng(seed)``, so a seed repeats the
    whole sequence. ``drop_last`` skips a final batch smaller than ``batch_size``.
    ``epochs=None`` repeats forever::

        for xb, yb in gc.data.batches(X, Y, batch_size=64, shuffle=True, seed=0, epochs=5):
            sess.run(train, {x: xb, y: yb})

    ``shard=(rank, size)`` (data-parallel training, ``graphc.distributed``): every rank
    draws the same order (give all the same ``seed``) and takes every ``size``-th example
    of it from position ``rank``, after dropping the last ``n % size`` examples of the
    epoch, so shards are equal and local batch k of all ranks together is global batch k
    of ``batch_size * size`` examples.
    """
    if not arrays:
        raise GraphcError("batches() needs at least one array", user_location())
    arrays = [np.asarray(a) for a in arrays]
    for a in arrays:
        if a.ndim == 0:
            raise ShapeError(
                "batches() slices along the first axis; got a 0-d array", user_location()
            )
    n = len(arrays[0])
    lengths = [len(a) for a in arrays]
    if any(m != n for m in lengths):
        raise ShapeError(
            f"batches(): the arrays have different lengths {lengths}; they are "
            "sliced together, so they must agree",
            user_location(),
        )
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise GraphcError(f"batch_size must be a positive int, got {batch_size!r}", user_location())
    if epochs is not None and (not isinstance(epochs, (int, np.integer)) or epochs < 0):
        raise GraphcError(
            f"epochs must be a non-negative int or None, got {epochs!r}", user_location()
        )
    if shard is not None:
        ok = (
            isinstance(shard, (tuple, list))
            and len(shard) == 2
            and all(isinstance(v, (int, np.integer)) for v in shard)
        )
        if not ok or not 0 <= shard[0] < shard[1]:
            raise GraphcError(
                f"shard must be (rank, size) with 0 <= rank < size, got {shard!r}", user_location()
            )
        shard = (int(shard[0]), int(shard[1]))
    return _generate(arrays, n, int(batch_size), shuffle, seed, drop_last, epochs, shard)


def _generate(arrays, n, batch_size, shuffle, seed, drop_last, epochs, shard=None):
    rng = np.random.default_rng(seed)
    epoch = 0
    while epochs is None or epoch < epochs:
        order = rng.permutation(n) if shuffle else None
        if shard is not None:  # this rank's equal part of the epoch's order
            rank, size = shard
            full = order if order is not None else np.arange(n)
            order = full[: n - n % size][rank::size]
        m = len(order) if order is not None else n
        stop = m - m % batch_size if drop_last else m
        for lo in range(0, stop, batch_size):
            idx = order[lo : lo + batch_size] if order is not None else slice(lo, lo + batch_size)
            parts = tuple(a[idx] for a in arrays)
            yield parts[0] if len(parts) == 1 else parts
        epoch += 1


def num_batches(n, batch_size, drop_last=False):
    """How many batches one epoch of ``n`` examples gives."""
    return n // batch_size if drop_last else -(-n // batch_size)


# --- IDX files (MNIST, Fashion-MNIST) ---------------------------------------------------------

# The third byte of an IDX file's magic number names the element type (big-endian data).
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path):
    """The array stored in an IDX file (``.gz`` files are decompressed); DataError if the
    file is not IDX or is truncated."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise DataError(f"cannot read IDX file {path}: {e.strerror}", user_location()) from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise DataError(f"{path} is a damaged gzip file: {e}", user_location()) from None
    return parse_idx(raw, path)


def parse_idx(raw: bytes, path="<bytes>"):
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise DataError(
            f"{path} is not an IDX file (bad magic number {raw[:4]!r})", user_location()
        )
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header", user_location())
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    expected = dtype.itemsize * int(np.prod(shape, dtype=np.int64))
    if len(raw) - header != expected:
        raise DataError(
            f"{path}: the header promises shape {shape} ({expected} bytes of data) "
            f"but the file holds {len(raw) - header}",
            user_location(),
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def write_idx(path, array):
    """Write ``array`` as an IDX file (gzip-compressed when ``path`` ends with ``.gz``)."""
    a = np.asarray(array)
    codes = {np.dtype(v).newbyteorder("="): k for k, v in _IDX_TYPES.items()}
    code = codes.get(a.dtype.newbyteorder("="))
    if code is None:
        raise DataError(f"IDX cannot store {a.dtype} arrays", user_location())
    raw = (
        bytes([0, 0, code, a.ndim])
        + np.asarray(a.shape, dtype=">u4").tobytes()
        + a.astype(_IDX_TYPES[code]).tobytes()
    )
    with open(path, "wb") as f:
        f.write(gzip.compress(raw) if path.endswith(".gz") else raw)


_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def load_mnist(directory, kind="train"):
    """``(images, labels)`` of MNIST or Fashion-MNIST from the standard file names in
    ``directory`` (plain or ``.gz``): uint8 images of shape (n, 28, 28) and uint8 labels.
    graphc downloads nothing: fetch the four files yourself."""
    if kind not in _MNIST_FILES:
        raise DataError(
            f"load_mnist: kind must be 'train' or 'test', not {kind!r}", user_location()
        )
    arrays = []
    for stem in _MNIST_FILES[kind]:
        for candidate in (stem, stem + ".gz", stem.replace("-idx", ".idx")):
            path = os.path.join(directory, candidate)
            if os.path.exists(path):
                arrays.append(read_idx(path))
                break
        else:
            raise DataError(
                f"load_mnist: {directory} has no {stem} (or {stem}.gz)", user_location()
            )
    images, labels = arrays
    if len(images) != len(labels):
        raise DataError(
            f"load_mnist: {len(images)} images but {len(labels)} labels in {directory}",
            user_location(),
        )
    return images, labels


__all__ = [
    "batches",
    "num_batches",
    "read_idx",
    "parse_idx",
    "write_idx",
    "load_mnist",
    "DataError",
]
