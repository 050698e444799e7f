"""Front ends that build graphs: the ``.g`` language (``dsl``). The Python API itself lives
in ``graphc.ops`` and is what every front end calls."""

from .dsl import load, loads

__all__ = ["load", "loads"]
