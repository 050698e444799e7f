"""Parsing ``.g`` text with lark, and syntax errors people can read:
``file:line:col: message``, the offending line and a caret under the column."""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

import lark
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from ..errors import GraphcError, GSyntaxError, LimitError, SourceLocation, escape_controls

# How deeply expressions may nest (parentheses, calls, operator chains: ``a + b + c`` nests
# two deep). Evaluation and formatting walk the tree without recursion; the limit keeps what
# is built from a file within what the later stages can walk.
MAX_NESTING = 10_000


def grammar_text() -> str:
    # Installed: the grammar is package data of graphc.grammar. In a source checkout with an
    # editable install that package is not importable, so fall back to the top-level folder.
    try:
        return resources.files("graphc.grammar").joinpath("graphc.lark").read_text("utf-8")
    except (ModuleNotFoundError, FileNotFoundError):
        return (Path(__file__).resolve().parents[2] / "grammar" / "graphc.lark").read_text("utf-8")


@functools.lru_cache(maxsize=1)
def parser() -> lark.Lark:
    return lark.Lark(
        grammar_text(), parser="lalr", propagate_positions=True, maybe_placeholders=True
    )


# Friendly messages for common mistakes, recognised as lark's match_examples does: the parser
# state where each example fails (and whether it failed at the end of the file) identifies
# the mistake, wherever it happens in a file.
_EXAMPLES = {
    "expected ':' and a type after the name (e.g. `input x : f32[N, 3]`)": [
        "model m { input x f32[3] }",
        "model m { param w f32[3] = zeros() }",
    ],
    "a parameter's initializer follows '=' (e.g. `param w : f32[3, 4] = normal(stddev=0.1)`)": [
        "model m { param w : f32[3] normal() }"
    ],
    "an expression is missing after the operator": [
        "model m { y = x + }",
        "model m { y = x * }",
        "model m { y = x @ }",
        "model m { y = }",
        "model m { y = x ** }",
        "model m { y = x < }",
        "model m { y = -}",
    ],
    "unbalanced parenthesis: a ')' is missing": [
        "model m { y = relu(x  z = y }",
        "model m { y = (x + 1  z = y }",
        "model m { y = relu(x }",
    ],
    "unbalanced bracket: a ']' is missing": ["model m { y = x[1  z = y }", "model m { y = x[1 }"],
    "a statement is `name = expression`, or starts with input, param, const, fn, output or train": [
        "model m { y x }",
        "model m { y + 1 }",
        "model m { 3 }",
        "model m { y(x) }",
    ],
    "`train` needs `LOSS with OPTIMIZER(args)` (e.g. `train loss with sgd(lr=0.1)`)": [
        "model m { train loss sgd(lr=0.1) }",
        "model m { train loss with sgd }",
    ],
    "a model is `model NAME { statements }`": ["model { }", "model m x = 1 }"],
    "a file holds models, `fn` definitions and `const` definitions": ["x = 1", "input x : f32"],
    "a '}' is missing at the end of the model": ["model m { y = x"],
}


def _state_of(e: UnexpectedInput):
    """The LALR state where parsing stopped and whether the file had ended there. (Not the
    stack depth, which depends on how many statements came before: lark's own
    match_examples compares it too, and so would miss most mistakes.)"""
    if not isinstance(e, UnexpectedToken):
        return None
    return getattr(e.state, "position", None), e.token.type == "$END"


@functools.lru_cache(maxsize=1)
def _example_labels() -> dict:
    labels = {}
    for label, examples in _EXAMPLES.items():
        for example in examples:
            try:
                parser().parse(example)
            except UnexpectedInput as e:
                state = _state_of(e)
                if state is not None and state[0] is not None:
                    labels.setdefault(state, label)
            else:  # pragma: no cover - a bad-syntax example that parses is a bug here
                raise AssertionError(f"syntax example parses: {example!r}")
    return labels


def _describe_expected(expected) -> str:
    p = parser()
    if {"NAME", "INT", "FLOAT"} <= set(expected):
        return "an expression"
    names = []
    for term in sorted(expected):
        if term == "$END":
            names.append("end of file")
            continue
        try:
            pat = p.get_terminal(term).pattern
        except KeyError:
            names.append(term)
            continue
        if term in ("NAME", "QNAME"):
            names.append("a name")
        elif term in ("INT", "FLOAT"):
            names.append("a number")
        elif term == "STRING":
            names.append("a string")
        elif pat.type == "str":
            names.append(repr(pat.value))
        else:
            names.append(term.lower())
    names = sorted(set(names))
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def without_bom(text: str) -> str:
    """``text`` with a leading byte-order mark (editors on Windows write one) as a space: it
    is whitespace to the grammar, and every line and column stays where it was."""
    return " " + text[1:] if text.startswith("\ufeff") else text


def source_lines(text: str) -> list[str]:
    """The lines of ``text`` as the grammar counts them: split at ``\\n`` only (a ``\\r``
    before it dropped). str.splitlines would also split at \\x0b, \\x0c, \\x1c-\\x1e,
    \\x85 and \\u2028/9, which may sit in comments and strings, and then every line number
    after them would show the wrong line."""
    return [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]


MAX_LINE = 1 << 20  # characters in one line (a string literal never spans lines)


def parse(text: str, filename: str) -> lark.Tree:
    """The parse tree of ``text``; a GSyntaxError (with the line and a caret) if it is not .g."""
    if len(text) > MAX_LINE:
        lines = source_lines(text)
        longest = max(range(len(lines)), key=lambda i: len(lines[i]))
        if len(lines[longest]) > MAX_LINE:
            raise LimitError(
                f"line {longest + 1} holds {len(lines[longest]):,} characters; "
                f"at most {MAX_LINE:,} are allowed",
                SourceLocation(filename, longest + 1, 1),
            )
    try:
        return parser().parse(without_bom(text))
    except UnexpectedInput as e:
        raise syntax_error(e, text, filename) from None
    except MemoryError:
        raise LimitError(
            f"{filename} is too large to parse in the memory available",
            SourceLocation(filename, 1, 1),
        ) from None


def transform(transformer: lark.Transformer, tree: lark.Tree, filename: str, lines):
    """``transformer.transform(tree)`` without recursion, so that long operator chains and
    deep nesting cost no Python stack; a LimitError at the line where nesting passes
    MAX_NESTING."""
    stack = [(tree, False, 0, None)]
    values: list = []
    while stack:
        node, ready, depth, at = stack.pop()
        if not isinstance(node, lark.Tree):
            values.append(node)
            continue
        meta = node.meta
        if not getattr(meta, "empty", True):
            at = meta
        if ready:
            n = len(node.children)
            children = values[len(values) - n :] if n else []
            del values[len(values) - n :]
            values.append(transformer._call_userfunc(node, children))
            continue
        if depth > MAX_NESTING:
            line, col = (at.line, at.column) if at is not None else (1, 1)
            src = lines[line - 1] if 0 < line <= len(lines) else ""
            raise LimitError(
                f"expressions nest more than {MAX_NESTING} deep",
                SourceLocation(filename, line, col, src),
            )
        stack.append((node, True, depth, at))
        for child in reversed(node.children):
            stack.append((child, False, depth + 1, at))
    return values[0]


def syntax_error(e: UnexpectedInput, text: str, filename: str) -> GSyntaxError:
    lines = source_lines(text) or [""]
    line, col = getattr(e, "line", -1), getattr(e, "column", -1)
    at_end = isinstance(e, UnexpectedToken) and e.token.type == "$END"
    if isinstance(e, UnexpectedEOF) or at_end or line is None or line < 1:
        line, col = len(lines), len(lines[-1]) + 1
    label = _example_labels().get(_state_of(e))
    if isinstance(e, UnexpectedCharacters):
        found = f"unexpected character {e.char!r}"
    elif isinstance(e, UnexpectedToken):
        tok = e.token
        found = "unexpected end of file" if tok.type == "$END" else f"unexpected {tok.value!r}"
        if label is None:
            label = f"expected {_describe_expected(e.accepts or e.expected)}"
    else:
        found = "unexpected end of file"
        if label is None:
            label = f"expected {_describe_expected(e.expected)}"
    message = f"syntax error: {found}" + (f"; {label}" if label else "")
    loc = SourceLocation(filename, line, col, lines[line - 1] if line <= len(lines) else "")
    return GSyntaxError(message, loc)


def attach_source(err: GraphcError) -> GraphcError:
    """Append the offending .g line and a caret under its column to ``err``'s message (once)."""
    loc = err.location
    if (
        loc is None
        or not loc.source_line
        or loc.col is None
        or getattr(err, "_source_attached", False)
    ):
        return err
    line, col = loc.source_line.expandtabs(1), loc.col
    if len(line) > 160:  # a window of a long line around the column
        lo = max(0, col - 1 - 80)
        line, col = ("…" if lo else "") + line[lo : lo + 160] + "…", col - lo + (1 if lo else 0)
    src = escape_controls(line)  # shown as escapes; the caret follows
    before = escape_controls(line[: col - 1])
    err.message = f"{err.message}\n    {src}\n    {' ' * len(before)}^"
    err.args = (err._format(),)
    err._source_attached = True
    return err
