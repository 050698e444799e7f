"""Errors for people: every graphc error names the node, its shapes and dtypes,
and the user's own source location."""

from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def _escape_char(c: str) -> str:
    n = ord(c)
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}"


def _is_control(c: str) -> bool:
    import unicodedata

    return c not in "\t" and (unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp"))


def escape_controls(text: str, keep: str = "") -> str:
    """``text`` with control characters (ESC, NUL, \\x0b, \\x85, \\u2028, bidi overrides…)
    written as escapes, so that text from a user's file cannot drive the terminal; tabs and
    the characters in ``keep`` stay as they are."""
    if text.isprintable() and not any(c in text for c in "\u2028\u2029"):
        return text
    return "".join(_escape_char(c) if c not in keep and _is_control(c) else c for c in text)


@dataclass(frozen=True)
class SourceLocation:
    """Where the user built something: a Python ``file:line`` or a ``.g`` ``file:line:col``."""

    file: str
    line: int
    col: int | None = None
    source_line: str | None = None  # the text of that line, for carets in .g errors

    def __str__(self) -> str:
        if self.col is None:
            return f"{self.file}:{self.line}"
        return f"{self.file}:{self.line}:{self.col}"

    @functools.cached_property
    def strings(self) -> tuple:
        """``(str(self),)``, made once: the compiler's graph lists a node's locations."""
        return (str(self),)


def _inside_graphc(filename: str) -> bool:
    inside = _INSIDE.get(filename)
    if inside is None:
        inside = os.path.abspath(filename).startswith(_PACKAGE_DIR + os.sep)
        if os.path.isabs(filename):  # (a relative name's meaning changes with the cwd)
            _INSIDE[filename] = inside
    return inside


_INSIDE: dict = {}  # code file name -> whether it is graphc's (user_location runs per node)

# One SourceLocation per user line (they are immutable): a model's ops share the few lines
# that built them instead of carrying one object each. Bounded, for code made on the fly.
_LOCATIONS: dict = {}
_LOCATIONS_MAX = 1 << 16


# A front end (the .g parser) sets this while it builds nodes, so they carry
# the .g position instead of the parser's Python line.
_location_override: list[SourceLocation] = []


def user_location() -> SourceLocation | None:
    """The innermost stack frame outside the graphc package: the user's line."""
    if _location_override:
        return _location_override[-1]
    frame, known = sys._getframe(1), _INSIDE
    while frame is not None:  # (a dict read per frame: this runs for every node built)
        inside = known.get(frame.f_code.co_filename)
        if inside is None:
            inside = _inside_graphc(frame.f_code.co_filename)
        if not inside:
            break
        frame = frame.f_back
    if frame is None:
        return None
    key = (frame.f_code.co_filename, frame.f_lineno)
    loc = _LOCATIONS.get(key)
    if loc is None:
        if len(_LOCATIONS) >= _LOCATIONS_MAX:
            _LOCATIONS.clear()
        loc = _LOCATIONS[key] = SourceLocation(*key)
    return loc


class located_at:
    """Context manager: nodes built inside carry ``location`` (used by front ends)."""

    def __init__(self, location: SourceLocation):
        self.location = location

    def __enter__(self):
        _location_override.append(self.location)
        return self.location

    def __exit__(self, *exc):
        _location_override.pop()
        return False


class GraphcError(Exception):
    """Base class of every error graphc raises for a user mistake."""

    def __init__(self, message: str, location: SourceLocation | None = None, node=None):
        self.message = message
        # an error raised without a location (a weak-scalar or conversion rule, say) still
        # names the user's line that led to it
        self.location = location if location is not None else user_location()
        self.node = node
        super().__init__(self._format())

    def _format(self) -> str:
        if self.location is not None:
            return f"{self.location}: {self.message}"
        return self.message


class ShapeError(GraphcError, ValueError):
    """Incompatible static or fed shapes."""


class DTypeError(GraphcError, TypeError):
    """Mismatched or unsupported dtypes."""


class FeedError(GraphcError, ValueError):
    """A missing, malformed or mistyped feed."""


class NotFoundError(GraphcError, KeyError):
    """An unknown tensor, operation or name."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return self._format()


class UninitializedError(GraphcError, RuntimeError):
    """A variable was read before its initializer ran."""


class GraphFinalizedError(GraphcError, RuntimeError):
    """A node was added to a finalized graph."""


class DefineAndRunError(GraphcError, TypeError):
    """A symbolic tensor was used where a concrete value is needed (``if t:``)."""


class GradientError(GraphcError, ValueError):
    """A gradient is missing or a gradient rule misbehaved."""


class NumericsError(GraphcError, FloatingPointError):
    """A NaN or Inf appeared where check_numerics was asked for."""


class CheckpointError(GraphcError, OSError):
    """A checkpoint that is corrupt, truncated or does not match the graph."""


class GSyntaxError(GraphcError, SyntaxError):
    """A syntax error in a ``.g`` file."""

    def __str__(self) -> str:
        return self._format()


class UnimplementedError(GraphcError, NotImplementedError):
    """An API graphc does not provide (named in the message)."""


class ClosedSessionError(GraphcError, RuntimeError):
    """A closed session (or a callable made from it) was used: "Attempted to use a closed
    Session", as TF 1.x says."""


class LimitError(GraphcError, MemoryError):
    """An input, a file or a graph is over one of graphc's limits (expansion, nesting,
    declared sizes, memory); the message names the limit and where it was reached."""


class OpError(GraphcError, RuntimeError):
    """A kernel failed at run time; names the op and the user's line."""


class GraphcWarning(UserWarning):
    """Something that works but is probably not what you meant: ops built inside the
    training loop, variables that ``minimize`` leaves untrained (``graphc.diagnostics``)."""


class ArgumentError(GraphcError, TypeError):
    """A call with a keyword argument the function does not take (a misspelling, usually):
    raised rather than silently ignored, with the closest valid name."""
