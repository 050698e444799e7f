"""Compile generated CUDA source for a GPU architecture without a GPU: the CI compile checks.

Two independent compilers, either enough:
  * NVRTC — the compiler cupy's ``RawModule`` itself uses at run time — loaded with ctypes
    from PyPI's ``nvidia-cuda-nvrtc`` wheel (the ``dev`` extra) or the system's libnvrtc;
  * ``nvcc -cubin`` from a CUDA toolkit on PATH.
Both produce a cubin for ``sm_XX``, so a kernel that passes would load on that GPU.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CompileResult:
    ok: bool
    log: str
    cubin_bytes: int = 0
    cubin: bytes = b""  # the code itself, when the caller asked to keep it


def _nvrtc_candidates():
    spec = importlib.util.find_spec("nvidia")
    for root in (spec.submodule_search_locations or []) if spec else []:
        for pattern in ("cu*/lib/libnvrtc.so*", "cuda_nvrtc/lib/libnvrtc.so*"):
            yield from sorted(Path(root).glob(pattern), reverse=True)
    found = ctypes.util.find_library("nvrtc")
    if found:
        yield found


_NVRTC = []


def nvrtc():
    """The loaded libnvrtc, or None when neither the wheel nor a system copy is present."""
    if not _NVRTC:
        lib = None
        for path in _nvrtc_candidates():
            if "builtins" in str(path):
                continue
            try:
                lib = ctypes.CDLL(str(path))
                break
            except OSError:
                continue
        _NVRTC.append(lib)
    return _NVRTC[0]


def nvcc():
    return shutil.which("nvcc")


# Checks need a valid cubin, not a fast one: CUDA 12.8+'s fast-compile mode skips most of
# the optimizer and cuts the time for hundreds of kernels from minutes to seconds.
FAST = "--Ofast-compile=max"


# IEEE float32 on the device, as numpy computes on the host: no flush of denormals to zero,
# exact division and square root. (cupy's RawModule appends ``-ftz=true`` after the caller's
# options, and NVRTC honours the last one, so the cupy backend compiles with these itself.)
IEEE = ("-ftz=false", "-prec-div=true", "-prec-sqrt=true")


def nvrtc_compile(
    source: str, arch: str, name="graphc_kernels.cu", fast=True, options=(), keep=False
) -> CompileResult:
    """Compile ``source`` with NVRTC to a cubin for ``arch`` (e.g. ``"sm_90"``); ``options``
    are added to the command line, ``keep`` returns the cubin's bytes too."""
    lib = nvrtc()
    if lib is None:
        raise RuntimeError("NVRTC not found (pip install nvidia-cuda-nvrtc)")
    prog = ctypes.c_void_p()
    status = lib.nvrtcCreateProgram(
        ctypes.byref(prog), source.encode(), name.encode(), 0, None, None
    )
    if status != 0:
        raise RuntimeError(f"nvrtcCreateProgram failed with status {status}")
    try:
        opts = [f"--gpu-architecture={arch}".encode(), b"--std=c++17"]
        opts += [FAST.encode()] if fast else []
        opts += [o.encode() for o in options]
        argv = (ctypes.c_char_p * len(opts))(*opts)
        status = lib.nvrtcCompileProgram(prog, len(opts), argv)
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetProgramLog(prog, log)
        cubin, code = 0, b""
        if status == 0:
            n = ctypes.c_size_t()
            lib.nvrtcGetCUBINSize(prog, ctypes.byref(n))
            cubin = n.value
            if keep and cubin:
                buf = ctypes.create_string_buffer(cubin)
                lib.nvrtcGetCUBIN(prog, buf)
                code = buf.raw
        return CompileResult(
            status == 0 and cubin > 0, log.value.decode(errors="replace"), cubin, code
        )
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))


def nvcc_compile(source: str, arch: str, fast=True) -> CompileResult:
    """Compile ``source`` with ``nvcc -cubin -arch=arch``."""
    exe = nvcc()
    if exe is None:
        raise RuntimeError("nvcc not found on PATH")
    with tempfile.TemporaryDirectory(prefix="graphc-nvcc-") as tmp:
        src, out = Path(tmp) / "kernels.cu", Path(tmp) / "kernels.cubin"
        src.write_text(source)
        cmd = [exe, "-cubin", f"-arch={arch}", "-o", str(out), str(src)] + ([FAST] if fast else [])
        done = subprocess.run(cmd, capture_output=True, text=True)
        size = out.stat().st_size if out.exists() else 0
        return CompileResult(done.returncode == 0 and size > 0, done.stderr + done.stdout, size)
