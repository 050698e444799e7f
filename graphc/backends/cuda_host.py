"""Run generated CUDA kernels on the CPU: the host harness behind the kernel tests.

``HostModule(kernels)`` compiles the kernels' source — the very text NVRTC gets — with g++
and ``cuda_host_shim.h`` into one shared library, plus a small ``extern "C"`` launcher per
kernel, and calls them through ctypes on numpy buffers. It implements the same launcher
interface as the cupy backend's (``launch(launch, arrays)``), so the backend's orchestration
runs on the CPU with these kernels standing in for the GPU's.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ..errors import GraphcError
from . import cuda_codegen as cg

SHIM = Path(__file__).with_name("cuda_host_shim.h")


def host_compiler():
    """The C++ compiler the harness uses, or None (tests skip with that reason)."""
    return shutil.which("g++")


def _launcher(kernel: cg.Kernel) -> str:
    """``launch_<name>(grid_x, grid_y, block, args)``: unpacks ``void* args[]`` and runs it."""
    unpack = ", ".join(
        f"*({ctype.replace('__restrict__', '').strip()}*)a[{k}]"
        for k, (ctype, _) in enumerate(kernel.params)
    )
    return (
        f"static void run_{kernel.name}(void** a) {{ {kernel.name}({unpack}); }}\n"
        f'extern "C" void launch_{kernel.name}(unsigned gx, unsigned gy, unsigned b, '
        f"void** a) {{ gc_host_launch(gx, gy, b, run_{kernel.name}, a); }}\n"
    )


class HostModule:
    """Kernels compiled for the CPU. ``launch`` runs one ``cuda_codegen.Launch``."""

    def __init__(self, kernels, workdir=None):
        kernels = {k.name: k for k in kernels}
        self.kernels = kernels
        compiler = host_compiler()
        if compiler is None:
            raise GraphcError("the CUDA host harness needs g++ on PATH")
        self._tmp = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="graphc-host-")
            workdir = self._tmp.name
        src = Path(workdir) / "kernels.cu"
        lib = Path(workdir) / "kernels.so"
        src.write_text(
            cg.module_source(kernels.values())
            + "\n"
            + "\n".join(_launcher(k) for k in kernels.values())
        )
        cmd = [
            compiler,
            "-std=c++20",
            "-O0",
            "-fPIC",
            "-shared",
            "-pthread",
            "-include",
            str(SHIM),
            "-x",
            "c++",
            str(src),
            "-o",
            str(lib),
        ]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise GraphcError(f"host compilation of generated kernels failed:\n{done.stderr}")
        self._lib = ctypes.CDLL(str(lib))

    def launch(self, launch: cg.Launch, arrays) -> None:
        """Run ``launch`` with ``arrays`` (numpy, C-contiguous) as its pointer arguments."""
        kernel = launch.kernel
        n_ptr = len(kernel.params) - len(launch.scalars)
        if len(arrays) != n_ptr:
            raise GraphcError(f"{kernel.name} takes {n_ptr} arrays, got {len(arrays)}")
        for a in arrays:
            if not (isinstance(a, np.ndarray) and a.flags.c_contiguous):
                raise GraphcError(f"{kernel.name}: arguments must be C-contiguous numpy arrays")
        values = [ctypes.c_void_p(a.ctypes.data) for a in arrays]
        values += [ctypes.c_longlong(int(s)) for s in launch.scalars]
        argv = (ctypes.c_void_p * len(values))(*(ctypes.addressof(v) for v in values))
        fn = getattr(self._lib, f"launch_{kernel.name}")
        fn(
            ctypes.c_uint(launch.grid[0]),
            ctypes.c_uint(launch.grid[1]),
            ctypes.c_uint(launch.block),
            argv,
        )


_MODULES: dict = {}


def host_module(kernels) -> HostModule:
    """``HostModule(kernels)``, built once per set of kernel names in this process: the
    ``compile_kernels`` a cupy executable takes when it runs on the CPU."""
    key = tuple(sorted(k.name for k in kernels))
    module = _MODULES.get(key)
    if module is None:
        module = _MODULES[key] = HostModule(kernels)
    return module
