"""Checkpoints: ``gc.train.Saver`` (SPEC §5).

The file format is graphc's own and holds nothing that can run code::

    b"GRAPHCKPT\\x01"                magic and format version
    8 bytes, little-endian          length of the header
    header                          UTF-8 JSON: [{"name", "dtype", "shape", "offset", "nbytes"}]
    payload                         each variable's bytes, C order, little-endian
    32 bytes                        SHA-256 of everything above

Saving writes a temporary file in the target directory, fsyncs it and renames it over the
target, so a crash never leaves a half-written checkpoint under the real name. Restoring
reads and checks the whole file — checksum, header, every variable's name, dtype and
shape — before it assigns anything, so a corrupt, truncated or mismatched checkpoint raises
CheckpointError and leaves every variable as it was."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile

import numpy as np

from . import dtypes as D
from ._kwargs import accepts
from .errors import CheckpointError, GraphcError, user_location
from .ir.graph import get_default_graph
from .ops.state import GLOBAL_VARIABLES, Variable
from .shapes import format_shape

MAGIC = b"GRAPHCKPT\x01"
_DIGEST = 32
_STATE_FILE = "checkpoint"   # names the latest checkpoints of a directory (JSON)


def encode(arrays: dict) -> bytes:
    """The checkpoint bytes for ``{name: array}``."""
    entries, chunks, offset = [], [], 0
    for name, arr in arrays.items():
        a = np.asarray(arr, order="C")   # not ascontiguousarray: it makes 0-d arrays 1-d
        dtype = D.as_dtype(a.dtype)
        data = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        entries.append({"name": name, "dtype": dtype.name, "shape": list(a.shape),
                        "offset": offset, "nbytes": len(data)})
        chunks.append(data)
        offset += len(data)
    header = json.dumps(entries).encode()
    body = MAGIC + len(header).to_bytes(8, "little") + header + b"".join(chunks)
    return body + hashlib.sha256(body).digest()


def decode(blob: bytes, path="<bytes>") -> dict:
    """``{name: array}`` from checkpoint bytes; CheckpointError if anything is off."""
    def bad(why):
        return CheckpointError(f"checkpoint {path} is not usable: {why}", user_location())

    if len(blob) < len(MAGIC) + 8 + _DIGEST or not blob.startswith(MAGIC):
        raise bad("it is not a graphc checkpoint (wrong magic bytes or too short)")
    body, digest = blob[:-_DIGEST], blob[-_DIGEST:]
    if hashlib.sha256(body).digest() != digest:
        raise bad("its checksum does not match (the file is corrupt or truncated)")
    n = int.from_bytes(body[len(MAGIC):len(MAGIC) + 8], "little")
    start = len(MAGIC) + 8
    try:
        entries = json.loads(body[start:start + n].decode())
    except (UnicodeDecodeError, ValueError) as e:
        raise bad(f"its header is not valid JSON ({e})") from None
    payload = memoryview(body)[start + n:]
    arrays = {}
    for e in entries if isinstance(entries, list) else [None]:
        try:
            dtype = D.as_dtype(e["dtype"])
            shape = tuple(int(d) for d in e["shape"])
            lo, size = int(e["offset"]), int(e["nbytes"])
            np_dtype = np.dtype(dtype.np).newbyteorder("<")
            if lo < 0 or lo + size > len(payload) or size != np_dtype.itemsize * int(
                    np.prod(shape, dtype=np.int64)):
                raise ValueError(f"entry {e['name']!r} does not fit the payload")
            arr = np.frombuffer(payload[lo:lo + size], dtype=np_dtype).reshape(shape)
        except (TypeError, KeyError, ValueError, GraphcError) as err:
            raise bad(f"its header has a malformed entry ({err})") from None
        arrays[str(e["name"])] = arr.astype(dtype.np)   # native byte order, own memory
    return arrays


def write_atomic(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file, fsync and rename."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable; not every platform can open a directory
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


class Saver:
    """Saves and restores variables of a session.

    ``var_list``: a list of variables (saved under their op names) or a dict
    ``{name: variable}``; default: every global variable of the graph when the Saver is
    built — so build it after the optimizer, whose slot variables then get saved too.
    ``max_to_keep``: older checkpoints this Saver wrote are deleted (None keeps all)."""

    @accepts("reshape", "sharded", "keep_checkpoint_every_n_hours", "name",
             "restore_sequentially", "saver_def", "builder", "defer_build", "allow_empty",
             "write_version", "pad_step_number", "save_relative_paths", "filename",
             what="Saver")
    def __init__(self, var_list=None, max_to_keep=5, graph=None, **_tf_kwargs):
        graph = graph or get_default_graph()
        if var_list is None:
            var_list = graph.get_collection(GLOBAL_VARIABLES)
        if isinstance(var_list, dict):
            items = list(var_list.items())
        else:
            items = [(v.op.name, v) for v in var_list]
        for name, v in items:
            if not isinstance(v, Variable):
                raise GraphcError(f"Saver can only save gc.Variables; {name!r} is {v!r}",
                                  user_location())
        names = [n for n, _ in items]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise GraphcError(f"Saver: several variables are saved as {dupes}", user_location())
        self._vars = dict(items)
        self.max_to_keep = max_to_keep
        self._written: list[str] = []

    @accepts("latest_filename", "meta_graph_suffix", "write_meta_graph",
             "strip_default_attrs", "save_debug_info", what="Saver.save")
    def save(self, sess, save_path, global_step=None, write_state=True, **_tf_kwargs):
        """Write the variables' current values to ``save_path`` (``save_path-<step>`` when
        ``global_step`` is given) and return that path."""
        if global_step is not None:
            step = global_step if isinstance(global_step, (int, np.integer)) else \
                sess.run(global_step)
            save_path = f"{save_path}-{int(step)}"
        arrays = {}
        for name, v in self._vars.items():
            value = sess.get_variable(v)
            if value is None:
                raise CheckpointError(f"cannot save variable {name!r}: it is not initialized in "
                                      "this session", v.op.location)
            arrays[name] = value
        write_atomic(save_path, encode(arrays))
        self._remember(save_path, write_state)
        return save_path

    def restore(self, sess, save_path):
        """Set the variables from ``save_path``. Everything is checked first: on any problem
        CheckpointError is raised and no variable changes."""
        try:
            with open(save_path, "rb") as f:
                blob = f.read()
        except OSError as e:
            raise CheckpointError(f"cannot read checkpoint {save_path}: {e.strerror}",
                                  user_location()) from None
        stored = decode(blob, save_path)
        values = {}
        for name, v in self._vars.items():
            if name not in stored:
                raise CheckpointError(
                    f"checkpoint {save_path} has no value for variable {name!r} "
                    f"(it holds {sorted(stored)})", user_location())
            arr = stored[name]
            if D.as_dtype(arr.dtype) is not v.dtype:
                raise CheckpointError(
                    f"checkpoint {save_path} stores {name!r} as {D.as_dtype(arr.dtype)}, but the "
                    f"variable {v.describe()} is {v.dtype}", user_location())
            if not _shape_fits(v.shape, arr.shape):
                raise CheckpointError(
                    f"checkpoint {save_path} stores {name!r} with shape {arr.shape}, but the "
                    f"variable {v.describe()} has shape {format_shape(v.shape)}", user_location())
            values[v] = arr
        for v, arr in values.items():     # only now, with every value checked
            sess.set_variable(v, arr)

    def _remember(self, path, write_state):
        if path in self._written:
            self._written.remove(path)
        self._written.append(path)
        if self.max_to_keep:
            while len(self._written) > self.max_to_keep:
                old = self._written.pop(0)
                if os.path.exists(old):
                    os.unlink(old)
        if write_state:
            directory = os.path.dirname(os.path.abspath(path))
            state = {"latest": os.path.basename(path),
                     "all": [os.path.basename(p) for p in self._written]}
            write_atomic(os.path.join(directory, _STATE_FILE), json.dumps(state).encode())


def _shape_fits(static, shape):
    if static is None:
        return True
    return len(static) == len(shape) and all(
        not isinstance(d, int) or d == n for d, n in zip(static, shape, strict=True))


def latest_checkpoint(checkpoint_dir):
    """The path of the newest checkpoint a Saver wrote in ``checkpoint_dir``, or None."""
    try:
        with open(os.path.join(checkpoint_dir, _STATE_FILE), encoding="utf-8") as f:
            state = json.load(f)
        return os.path.join(checkpoint_dir, str(state["latest"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


__all__ = ["Saver", "latest_checkpoint", "encode", "decode", "write_atomic"]
