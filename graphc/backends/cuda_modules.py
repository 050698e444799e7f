"""Generated CUDA source -> a loaded module on the current device, compiled once per device.

graphc compiles its kernels with NVRTC itself (``cuda_compile.nvrtc_compile``) for the exact
architecture of the device, with IEEE float32 (``cuda_compile.IEEE``: denormals kept, as
numpy keeps them), and loads the cubin with ``cupy.RawModule(path=...)``. Going through
``cupy.RawModule(code=...)`` instead would append ``-ftz=true`` to the options, flushing
float32 denormals to zero on the device only. When graphc's own NVRTC is missing or its cubin
does not load (a driver older than the NVRTC wheel), it falls back to cupy's compiler and
says so once: results then flush denormals, as cupy's own kernels do.

Modules are cached in memory per (device, source) and on disk per (architecture, NVRTC
version, source), so a second process on the same machine loads instead of compiling.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import threading
import warnings
from pathlib import Path

from ..fileio import write_atomic
from . import cuda_compile

_modules: dict = {}
_lock = threading.Lock()
_warned: list = []


class KernelCompileError(Exception):
    """NVRTC rejected generated source; ``log`` is its message."""

    def __init__(self, log: str):
        super().__init__(log)
        self.log = log


def cache_dir() -> Path:
    root = os.environ.get("GRAPHC_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "graphc"
    )
    return Path(root) / "cuda"


def load(cupy, source: str):
    """The ``cupy.RawModule`` of ``source`` on the current device."""
    device = cupy.cuda.Device()
    key = (device.id, source)
    with _lock:
        module = _modules.get(key)
        if module is None:
            module = _modules[key] = _build(cupy, source, f"sm_{device.compute_capability}")
        return module


def _build(cupy, source, arch):
    if cuda_compile.nvrtc() is None:
        return _fallback(cupy, source, "graphc's NVRTC (the nvidia-cuda-nvrtc wheel) is missing")
    tag = hashlib.sha256(f"{arch}\0{_nvrtc_version()}\0{source}".encode()).hexdigest()[:32]
    path = cache_dir() / f"{tag}.cubin"
    if not path.is_file():
        result = cuda_compile.nvrtc_compile(
            source, arch, fast=False, keep=True, options=cuda_compile.IEEE
        )
        if not result.ok:
            raise KernelCompileError(result.log)
        write_atomic(path, result.cubin)  # another process may build it too
    try:
        return cupy.RawModule(path=str(path))
    except Exception as e:  # noqa: BLE001 - a driver older than the compiler: cupy's own
        return _fallback(cupy, source, f"the cubin for {arch} did not load ({e})")


def _fallback(cupy, source, why):
    if not _warned:
        _warned.append(why)
        warnings.warn(
            f"graphc compiles CUDA kernels through cupy because {why}; float32 "
            "denormals are then flushed to zero on the device",
            stacklevel=3,
        )
    try:
        return cupy.RawModule(code=source, options=("--std=c++17",))
    except cupy.cuda.compiler.CompileException as e:
        raise KernelCompileError(str(e)) from None


def _nvrtc_version() -> str:
    major, minor = ctypes.c_int(), ctypes.c_int()
    cuda_compile.nvrtc().nvrtcVersion(ctypes.byref(major), ctypes.byref(minor))
    return f"{major.value}.{minor.value}"
