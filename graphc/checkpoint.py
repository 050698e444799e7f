"""Checkpoints: ``gc.train.Saver`` (SPEC §5).

A checkpoint is a safetensors file (https://github.com/huggingface/safetensors), written
through the ``safetensors`` library when it is installed
(``pip install "graphc-compiler[checkpoint]"``) and otherwise by graphc itself in the same
layout, so ``safetensors.numpy.load_file`` and every
other safetensors reader open it::

    8 bytes, little-endian          length of the header
    header                          UTF-8 JSON: {"__metadata__": {...}, NAME: {"dtype", "shape",
                                    "data_offsets": [begin, end]}, ...}
    payload                         each variable's bytes, C order, little-endian

The keys are the variables' names. ``__metadata__`` holds ``"format": "graphc"``, the
checkpoint version and a SHA-256 over every variable's name, dtype, shape and bytes, which
restoring checks. Nothing in a checkpoint can run code: it is JSON and raw numbers.
Checkpoints of graphc's earlier format (``GRAPHCKPT\\x01`` magic, JSON header, SHA-256
trailer) still restore.

Saving writes a temporary file in the target directory, fsyncs it and renames it over the
target (``fileio.write_atomic``), then rewrites the directory's state file, and only then
deletes the checkpoints beyond ``max_to_keep``: a crash at any point leaves a state file that
names a loadable checkpoint. Restoring reads and checks the whole file — checksum, header,
every variable's name, dtype and shape — before it assigns anything, so a corrupt, truncated,
forged or mismatched checkpoint raises CheckpointError and leaves every variable as it was."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys

import numpy as np

from . import dtypes as D
from ._kwargs import accepts
from .errors import CheckpointError, ClosedSessionError, GraphcError, user_location
from .fileio import read_regular, remove_orphans, write_atomic
from .ir.graph import get_default_graph
from .ops.state import GLOBAL_VARIABLES, Variable
from .shapes import format_shape

MAGIC = b"GRAPHCKPT\x01"  # graphc's first format (still restored)
_DIGEST = 32
_STATE_FILE = "checkpoint"  # names the latest checkpoints of a directory (JSON)
VERSION = "2"
MAX_HEADER = 100_000_000  # bytes of JSON header, as the safetensors library allows
MAX_CHECKPOINT = 1 << 40  # bytes of a checkpoint file restore reads (1 TiB)
_MAX_DIM = (1 << 63) - 1

_ST_DTYPE = {
    D.float16: "F16",
    D.float32: "F32",
    D.float64: "F64",
    D.int8: "I8",
    D.int16: "I16",
    D.int32: "I32",
    D.int64: "I64",
    D.uint8: "U8",
    D.bool_: "BOOL",
}
_ST_BACK = {v: k for k, v in _ST_DTYPE.items()}


def _prepare(arrays: dict) -> dict:
    """Each value as a C-contiguous, native-order array of a graphc dtype."""
    out = {}
    for name, arr in arrays.items():
        if not isinstance(name, str):
            raise CheckpointError(f"checkpoint keys are names (str), got {name!r}")
        a = np.asarray(arr)
        dtype = D.as_dtype(a.dtype)
        out[name] = np.array(a, dtype=dtype.np, order="C", copy=True)  # 0-d stays 0-d
    return out


def digest(arrays: dict) -> str:
    """The SHA-256 (hex) over every array's name, dtype, shape and little-endian bytes, in
    name order: what the header's metadata records and restore checks, whatever the layout."""
    h = hashlib.sha256()
    names = sorted(arrays)
    h.update(
        json.dumps(
            [[n, _ST_DTYPE[D.as_dtype(arrays[n].dtype)], list(arrays[n].shape)] for n in names]
        ).encode()
    )
    for n in names:
        a = arrays[n]
        h.update(a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes())
    return h.hexdigest()


def encode(arrays: dict) -> bytes:
    """The checkpoint (safetensors) bytes for ``{name: array}``."""
    arrays = _prepare(arrays)
    metadata = {"format": "graphc", "graphc_checkpoint": VERSION, "sha256": digest(arrays)}
    try:
        from safetensors.numpy import save
    except ImportError:
        return _safetensors_bytes(arrays, metadata)
    little = {n: a.astype(a.dtype.newbyteorder("<"), copy=False) for n, a in arrays.items()}
    return save(little, metadata=metadata)


def _safetensors_bytes(arrays: dict, metadata: dict) -> bytes:
    """The safetensors layout without the library: tensors ordered by alignment, then name
    (as the library orders them); the header padded with spaces to a multiple of 8."""
    order = sorted(arrays, key=lambda n: (-arrays[n].dtype.itemsize, n))
    header, chunks, offset = {"__metadata__": metadata}, [], 0
    for n in order:
        a = arrays[n]
        data = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[n] = {
            "dtype": _ST_DTYPE[D.as_dtype(a.dtype)],
            "shape": list(a.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + b"".join(chunks)


def _json(text: bytes, bad):
    try:
        return json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise bad(f"its header is not valid JSON ({e})") from None
    except RecursionError:
        raise bad("its header nests too deeply") from None


def _shape(value, bad, name) -> tuple:
    if (
        not isinstance(value, list)
        or len(value) > 64
        or not all(type(d) is int and 0 <= d <= _MAX_DIM for d in value)
    ):
        raise bad(f"entry {name!r} has a malformed shape {str(value)[:80]}")
    return tuple(value)


def _nbytes(dtype, shape) -> int:
    n = np.dtype(dtype.np).itemsize
    for d in shape:
        n *= d
    return n  # a Python int: a forged shape cannot overflow


def decode(blob: bytes, path="<bytes>") -> dict:
    """``{name: array}`` from checkpoint bytes; CheckpointError if anything is off."""

    def bad(why):
        return CheckpointError(f"checkpoint {path} is not usable: {why}", user_location())

    if blob.startswith(MAGIC):
        return _decode_v1(blob, bad)
    if len(blob) < 8:
        raise bad("it is not a checkpoint (too short)")
    n = int.from_bytes(blob[:8], "little")
    if n > MAX_HEADER or 8 + n > len(blob):
        raise bad(
            "it is not a checkpoint (its header length does not fit the file; "
            "truncated, or another kind of file)"
        )
    header = _json(blob[8 : 8 + n], bad)
    if not isinstance(header, dict):
        raise bad("its header is not a JSON object")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict):
        raise bad("its __metadata__ is not a JSON object")
    payload = memoryview(blob)[8 + n :]
    arrays, spans = {}, []
    for name, e in header.items():
        if not isinstance(e, dict):
            raise bad(f"entry {name!r} is not a JSON object")
        dtype = _ST_BACK.get(e.get("dtype"))
        if dtype is None:
            raise bad(
                f"entry {name!r} has dtype {str(e.get('dtype'))[:40]!r}, which graphc "
                f"does not hold (it holds {', '.join(_ST_BACK)})"
            )
        shape = _shape(e.get("shape"), bad, name)
        offs = e.get("data_offsets")
        if not (
            isinstance(offs, list)
            and len(offs) == 2
            and all(type(o) is int for o in offs)
            and 0 <= offs[0] <= offs[1] <= len(payload)
        ):
            raise bad(
                f"entry {name!r} has data offsets {str(offs)[:80]} outside the payload "
                f"of {len(payload)} bytes"
            )
        if offs[1] - offs[0] != _nbytes(dtype, shape):
            raise bad(
                f"entry {name!r} claims {offs[1] - offs[0]} bytes for shape "
                f"{list(shape)} of {dtype}"
            )
        spans.append(offs)
        np_dtype = np.dtype(dtype.np).newbyteorder("<")
        arrays[name] = np.frombuffer(payload[offs[0] : offs[1]], dtype=np_dtype).reshape(shape)
    spans.sort()
    if any(a[1] > b[0] for a, b in zip(spans, spans[1:])):
        raise bad("its entries overlap")
    if meta.get("format") == "graphc" or "sha256" in meta:
        if meta.get("sha256") != digest(arrays):
            raise bad("its checksum does not match (the file is corrupt or truncated)")
    return {k: a.astype(a.dtype.newbyteorder("="), copy=True) for k, a in arrays.items()}


def _decode_v1(blob: bytes, bad) -> dict:
    """graphc's first format: magic, 8-byte header length, JSON entries, payload, SHA-256."""
    if len(blob) < len(MAGIC) + 8 + _DIGEST:
        raise bad("it is not a graphc checkpoint (too short)")
    body, check = blob[:-_DIGEST], blob[-_DIGEST:]
    if hashlib.sha256(body).digest() != check:
        raise bad("its checksum does not match (the file is corrupt or truncated)")
    start = len(MAGIC) + 8
    n = int.from_bytes(body[len(MAGIC) : start], "little")
    if n > MAX_HEADER or start + n > len(body):
        raise bad("its header length does not fit the file")
    entries = _json(body[start : start + n], bad)
    payload = memoryview(body)[start + n :]
    arrays = {}
    for e in entries if isinstance(entries, list) else [None]:
        if not isinstance(e, dict):
            raise bad("its header has a malformed entry")
        name = e.get("name")
        try:
            dtype = D.as_dtype(e["dtype"])
            lo, size = e["offset"], e["nbytes"]
        except (TypeError, KeyError, ValueError, GraphcError) as err:
            raise bad(f"its header has a malformed entry ({err})") from None
        shape = _shape(e.get("shape"), bad, name)
        if (
            type(lo) is not int
            or type(size) is not int
            or lo < 0
            or lo + size > len(payload)
            or size != _nbytes(dtype, shape)
        ):
            raise bad(f"entry {name!r} does not fit the payload")
        arr = np.frombuffer(payload[lo : lo + size], dtype=np.dtype(dtype.np).newbyteorder("<"))
        arrays[str(name)] = arr.reshape(shape).astype(dtype.np)  # native order, own memory
    return arrays


def read(path) -> dict:
    """``{name: array}`` of the checkpoint file ``path``: a regular file, checked whole."""
    blob = read_regular(path, MAX_CHECKPOINT, "checkpoint", CheckpointError)
    return decode(blob, path)


def loadable(path) -> bool:
    """Whether ``path`` is a checkpoint that restores (checked whole, nothing assigned)."""
    try:
        read(path)
        return True
    except (CheckpointError, MemoryError):
        return False


class Saver:
    """Saves and restores variables of a session.

    ``var_list``: a list of variables (saved under their op names) or a dict
    ``{name: variable}``; default: every global variable of the graph when the Saver is
    built — so build it after the optimizer, whose slot variables then get saved too.
    ``max_to_keep``: only the newest checkpoints of a save path are kept (None or 0 keeps
    all). It holds across restarts: the first save into a directory adopts the checkpoints
    its state file lists, and those of the same save path (``PATH-<step>``) a crash left
    unlisted, oldest first."""

    @accepts(
        "reshape",
        "sharded",
        "keep_checkpoint_every_n_hours",
        "name",
        "restore_sequentially",
        "saver_def",
        "builder",
        "defer_build",
        "allow_empty",
        "write_version",
        "pad_step_number",
        "save_relative_paths",
        "filename",
        what="Saver",
    )
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
                raise GraphcError(
                    f"Saver can only save gc.Variables; {name!r} is {v!r}", user_location()
                )
        names = [n for n, _ in items]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise GraphcError(f"Saver: several variables are saved as {dupes}", user_location())
        self._vars = dict(items)
        self.max_to_keep = max_to_keep
        self._written: list[str] = []
        self._adopted: set = set()  # directories whose earlier checkpoints were adopted

    @property
    def last_checkpoints(self) -> list[str]:
        """The checkpoints this Saver keeps, oldest first (TF's ``last_checkpoints``)."""
        return list(self._written)

    @accepts(
        "latest_filename",
        "meta_graph_suffix",
        "write_meta_graph",
        "strip_default_attrs",
        "save_debug_info",
        "all_ranks",
        what="Saver.save",
    )
    def save(self, sess, save_path, global_step=None, write_state=True, **_tf_kwargs):
        """Write the variables' current values to ``save_path`` (``save_path-<step>`` when
        ``global_step`` is given) and return that path. In a ``graphc.distributed`` job
        only rank 0 writes (the others return the path); ``all_ranks=True`` writes on every
        rank."""
        _check_open(sess)
        base = os.fspath(save_path)
        if global_step is not None:
            step = (
                global_step if isinstance(global_step, (int, np.integer)) else sess.run(global_step)
            )
            save_path = f"{base}-{int(step)}"
        save_path = os.fspath(save_path)
        if not _writes_here(_tf_kwargs):  # data-parallel jobs: rank 0 writes
            return save_path
        arrays = {}
        for name, v in self._vars.items():
            value = sess.get_variable(v)
            if value is None:
                raise CheckpointError(
                    f"cannot save variable {name!r}: it is not initialized in this session",
                    v.op.location,
                )
            arrays[name] = value
        directory = os.path.dirname(os.path.abspath(save_path))
        remove_orphans(directory)  # temporary files of saves that were killed
        self._adopt(directory, base)
        write_atomic(save_path, encode(arrays))
        self._remember(save_path, write_state)
        return save_path

    def restore(self, sess, save_path):
        """Set the variables from ``save_path``. Everything is checked first: on any problem
        CheckpointError is raised and no variable changes."""
        _check_open(sess)
        stored = read(save_path)
        values = {}
        for name, v in self._vars.items():
            if name not in stored:
                raise CheckpointError(
                    f"checkpoint {save_path} has no value for variable {name!r} "
                    f"(it holds {sorted(stored)[:20]})",
                    user_location(),
                )
            arr = stored[name]
            if D.as_dtype(arr.dtype) is not v.dtype:
                raise CheckpointError(
                    f"checkpoint {save_path} stores {name!r} as {D.as_dtype(arr.dtype)}, but the "
                    f"variable {v.describe()} is {v.dtype}",
                    user_location(),
                )
            if not _shape_fits(v.shape, arr.shape):
                raise CheckpointError(
                    f"checkpoint {save_path} stores {name!r} with shape {arr.shape}, but the "
                    f"variable {v.describe()} has shape {format_shape(v.shape)}",
                    user_location(),
                )
            values[v] = arr
        for v, arr in values.items():  # only now, with every value checked
            sess.set_variable(v, arr)

    def _adopt(self, directory, base):
        """On the first save into ``directory``: the checkpoints kept there before (listed in
        its state file, or ``base-<step>`` files a crash left unlisted), oldest first."""
        if directory in self._adopted:
            return
        self._adopted.add(directory)
        pattern = re.compile(re.escape(os.path.basename(base)) + r"(-\d+)?")
        listed = [
            os.path.join(directory, n)
            for n in _read_state(directory).get("all", [])
            if pattern.fullmatch(n)
        ]  # another save path's checkpoints stay
        unlisted = []
        try:
            for n in os.listdir(directory):
                p = os.path.join(directory, n)
                if (
                    pattern.fullmatch(n)
                    and n != os.path.basename(base)
                    and p not in listed
                    and os.path.isfile(p)
                ):
                    unlisted.append(p)
        except OSError:
            pass
        unlisted.sort(key=_mtime)
        earlier = [p for p in unlisted + listed if os.path.isfile(p)]
        self._written = [p for p in earlier if p not in self._written] + self._written

    def _remember(self, path, write_state):
        path = os.path.join(os.path.dirname(os.path.abspath(path)), os.path.basename(path))
        if path in self._written:
            self._written.remove(path)
        self._written.append(path)
        doomed = []
        if self.max_to_keep:
            while len(self._written) > self.max_to_keep:
                doomed.append(self._written.pop(0))
        directory = os.path.dirname(path)
        if write_state:  # the state names the new checkpoint before any old one goes
            state = {
                "latest": os.path.basename(path),
                "all": [
                    os.path.basename(p) for p in self._written if os.path.dirname(p) == directory
                ],
            }
            write_atomic(os.path.join(directory, _STATE_FILE), json.dumps(state))
        for old in doomed:
            try:
                os.unlink(old)
            except FileNotFoundError:
                pass


def _check_open(sess):
    if getattr(sess, "_closed", False):
        raise ClosedSessionError("Attempted to use a closed Session.", user_location())


def _mtime(path) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


def _read_state(directory) -> dict:
    try:
        with open(os.path.join(directory, _STATE_FILE), "rb") as f:
            state = json.loads(f.read(1 << 20).decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(state, dict):
        return {}
    out = {}
    if isinstance(state.get("latest"), str):
        out["latest"] = state["latest"]
    if isinstance(state.get("all"), list):
        out["all"] = [
            n for n in state["all"] if isinstance(n, str) and n and os.path.basename(n) == n
        ]
    return out


def _writes_here(options) -> bool:
    """Whether this process writes checkpoints: rank 0 of a ``graphc.distributed`` job (or
    every rank with ``save(..., all_ranks=True)``); always on one process."""
    if options.get("all_ranks") or "graphc.distributed" not in sys.modules:
        return True
    return sys.modules["graphc.distributed"].rank() == 0


def _shape_fits(static, shape):
    if static is None:
        return True
    return len(static) == len(shape) and all(
        not isinstance(d, int) or d == n for d, n in zip(static, shape, strict=True)
    )


def _complete(path) -> bool:
    """Whether ``path`` holds a whole checkpoint: its header parses and the file is exactly as
    long as the header says (cheap: the payload is not read). An atomic save never leaves a
    partial file under a checkpoint's name, so this is what a crash could break."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if head.startswith(MAGIC[:8]):
                return loadable(path)  # the first format: checked whole
            if len(head) < 8:
                return False
            n = int.from_bytes(head, "little")
            if n > MAX_HEADER:
                return False
            header = json.loads(f.read(n).decode("utf-8"))
            size = os.fstat(f.fileno()).st_size
    except (OSError, ValueError, RecursionError):
        return False
    if not isinstance(header, dict):
        return False
    ends = [
        e.get("data_offsets", [0, -1])[1]
        for k, e in header.items()
        if k != "__metadata__"
        and isinstance(e, dict)
        and isinstance(e.get("data_offsets"), list)
        and len(e["data_offsets"]) == 2
    ]
    return size == 8 + n + max(ends, default=0)


def _looks_like_checkpoint(path) -> bool:
    """A cheap first look: graphc's old magic, or a safetensors header naming graphc."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return head.startswith(MAGIC) or (len(head) > 8 and b'"graphc"' in head[8:])


def latest_checkpoint(checkpoint_dir):
    """The path of the newest checkpoint in ``checkpoint_dir``, or None: the one its state
    file names; if that one is gone or incomplete (a deleted or damaged file), the newest
    whole checkpoint the state lists, else the newest whole checkpoint file there. Only
    headers and sizes are read here; restore checks every byte."""
    checkpoint_dir = os.fspath(checkpoint_dir)
    state = _read_state(checkpoint_dir)
    listed = [state["latest"]] if "latest" in state else []
    listed += [n for n in reversed(state.get("all", [])) if n not in listed]
    for name in listed:
        path = os.path.join(checkpoint_dir, name)
        if os.path.isfile(path) and _complete(path):
            return path
    try:
        names = os.listdir(checkpoint_dir)
    except OSError:
        return None
    others = [
        os.path.join(checkpoint_dir, n)
        for n in names
        if n != _STATE_FILE and not n.endswith(".tmp") and n not in listed
    ]
    others = [p for p in others if os.path.isfile(p) and _looks_like_checkpoint(p)]
    for path in sorted(others, key=_mtime, reverse=True):
        if _complete(path):
            return path
    return None


__all__ = [
    "Saver",
    "latest_checkpoint",
    "encode",
    "decode",
    "read",
    "loadable",
    "digest",
    "write_atomic",
]
