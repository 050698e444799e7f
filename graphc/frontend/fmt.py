"""``graphc fmt``: a ``.g`` file in canonical layout, comments kept.

Layout: one statement per line, two-space indentation inside a model, single spaces around
binary operators and after commas, ``name : type`` in declarations, parentheses only where
precedence needs them, one blank line around each model and at most one where the source
had blank lines (consecutive ``const``/``fn`` lines stay grouped as written). Full-line
comments stay above the statement that followed them; trailing comments stay on their line.
Formatting a formatted file changes nothing.
"""

from __future__ import annotations

import functools

import lark
from lark import Token, Transformer, v_args
from lark.exceptions import UnexpectedInput

from .parser import grammar_text, source_lines, syntax_error, transform, without_bom

# Binding strength of each expression form (higher binds tighter).
_CMP, _SUM, _TERM, _UNARY, _POWER, _POSTFIX, _ATOM = range(1, 8)
_LEVEL = {
    "+": _SUM,
    "-": _SUM,
    "*": _TERM,
    "/": _TERM,
    "//": _TERM,
    "%": _TERM,
    "@": _TERM,
    "**": _POWER,
}


@functools.lru_cache(maxsize=1)
def _comment_parser():
    comments: list[Token] = []
    p = lark.Lark(
        grammar_text(),
        parser="lalr",
        propagate_positions=True,
        maybe_placeholders=True,
        lexer_callbacks={"COMMENT": comments.append},
    )
    return p, comments


def _wrap(item, need: int) -> str:
    text, level = item
    return text if level >= need else f"({text})"


class _Layout(Transformer):
    """Each expression method returns (text, level); statements return (text, meta)."""

    # -- expressions --------------------------------------------------------------------------
    def int(self, c):
        return c[0].value, _ATOM

    float = int
    string = int

    def true(self, c):
        return "true", _ATOM

    def false(self, c):
        return "false", _ATOM

    def none(self, c):
        return "none", _ATOM

    def name(self, c):
        return c[0].value, _ATOM

    def ref(self, c):
        return c[0]

    def callee(self, c):
        return ".".join(t.value for t in c)

    def kwarg(self, c):
        return f"{c[0].value}={_wrap(c[1], _CMP)}", _ATOM

    def _items(self, items):
        out = []
        for i in items:
            if isinstance(i, Token):  # the ellipsis
                out.append("...")
            else:
                out.append(_wrap(i, _CMP))
        return ", ".join(out)

    def call(self, c):
        return f"{c[0]}({self._items(c[1:])})", _ATOM

    def list(self, c):
        return f"[{self._items(c)}]", _ATOM

    def subscript(self, c):
        return f"{_wrap(c[0], _POSTFIX)}[{self._items(c[1:])}]", _POSTFIX

    def slice(self, c):
        text = "".join(":" if isinstance(x, Token) else _wrap(x, _CMP) for x in c if x is not None)
        return text, _ATOM

    def binop(self, c):
        a, op, b = c
        if op.type == "CMP":
            return f"{_wrap(a, _SUM)} {op.value} {_wrap(b, _SUM)}", _CMP
        level = _LEVEL[op.value]
        if op.value == "**":  # right-associative; its right side may be unary
            return f"{_wrap(a, _POSTFIX)} ** {_wrap(b, _UNARY)}", _POWER
        return f"{_wrap(a, level)} {op.value} {_wrap(b, level + 1)}", level

    def neg(self, c):
        return f"-{_wrap(c[1], _UNARY)}", _UNARY

    def pos(self, c):
        return f"+{_wrap(c[1], _UNARY)}", _UNARY

    # -- types --------------------------------------------------------------------------------
    def known_dim(self, c):
        return c[0].value

    def named_dim(self, c):
        return c[0].value

    def any_dim(self, c):
        return "?"

    def any_rank(self, c):
        return "*"

    def type(self, c):
        dims = [d for d in c[1:] if d is not None]
        return c[0].value + (f"[{', '.join(dims)}]" if dims else "")

    # -- statements ---------------------------------------------------------------------------
    @v_args(meta=True)
    def input_decl(self, meta, c):
        text = f"input {c[0][0]} : {c[1]}"
        return (text + (f" = {_wrap(c[2], _CMP)}" if c[2] is not None else ""), meta)

    @v_args(meta=True)
    def param_decl(self, meta, c):
        text = f"param {c[0][0]} : {c[1]}"
        if c[2] is not None:
            text += f" = {_wrap(c[2], _CMP)}"
        return (text + (" frozen" if c[3] is not None else ""), meta)

    @v_args(meta=True)
    def const_def(self, meta, c):
        return (f"const {c[0][0]} = {_wrap(c[1], _CMP)}", meta)

    @v_args(meta=True)
    def fn_def(self, meta, c):
        params = ", ".join(t.value for t in c[1:-1])
        return (f"fn {c[0].value}({params}) = {_wrap(c[-1], _CMP)}", meta)

    @v_args(meta=True)
    def fn_block(self, meta, c):
        params = ", ".join(t.value for t in c[1:] if isinstance(t, Token))
        within = "".join(f" in {x}" for x in c[1:] if isinstance(x, _In))
        lets = "".join(f"\n  {x}" for x in c[1:] if isinstance(x, _Let))
        body = f"{lets}\n  return {_wrap(c[-1], _CMP)}\n}}"
        return (f"fn {c[0].value}({params}){within} {{{body}", meta)

    def fn_in(self, c):
        return _In(c[0].value)

    def fn_let(self, c):
        return _Let(f"{c[0].value} = {_wrap(c[1], _CMP)}")

    @v_args(meta=True)
    def random_seed(self, meta, c):
        return (f"random_seed {c[0].value}", meta)

    @v_args(meta=True)
    def output(self, meta, c):
        return ("output " + ", ".join(n[0] for n in c), meta)

    @v_args(meta=True)
    def train(self, meta, c):
        return (f"train {c[0][0]} with {c[1].value}({self._items(c[2:])})", meta)


class _In(str):
    """``in F`` of a block fn, formatted."""


class _Let(str):
    """A block fn's ``name = expr``, formatted."""


def format_source(text: str, filename: str = "<string>") -> str:
    parser, comments = _comment_parser()
    comments.clear()
    text = without_bom(text)
    try:
        tree = parser.parse(text)
    except UnexpectedInput as e:
        raise syntax_error(e, text, filename) from None
    found = list(comments)
    lines: list[str] = []
    trailing = {}
    src_lines = source_lines(text)
    for tok in found:
        before = src_lines[tok.line - 1][: tok.column - 1]
        if before.strip():
            trailing[tok.line] = tok.value
    # full-line comments, in order, wait for the statement they precede
    pending = sorted((t for t in found if trailing.get(t.line) != t.value), key=lambda t: t.line)

    last = [None]  # the source line of the last comment or statement written

    def gap(line):
        """One blank line where the source had some before ``line``."""
        if last[0] is not None and line > last[0] + 1 and lines and lines[-1] != "":
            lines.append("")

    def flush_comments(upto_line, indent):
        while pending and pending[0].line < upto_line:
            tok = pending.pop(0)
            gap(tok.line)
            lines.append(indent + tok.value.rstrip())
            last[0] = tok.line

    def emit(stmt_text, meta, indent):
        flush_comments(meta.line, indent)
        gap(meta.line)
        # comments at the ends of the lines a statement spans follow it (none is dropped)
        tails = [
            trailing.pop(n).rstrip() for n in range(meta.line, meta.end_line + 1) if n in trailing
        ]
        stmt_text = stmt_text.replace("\n", "\n" + indent)  # a block fn's lines
        lines.append(indent + stmt_text + "".join(f"  {t}" for t in tails))
        last[0] = meta.end_line

    layout = _Layout()
    before_model = False
    for item in tree.children:
        if item.data == "model":
            # a model is set apart from its neighbours by one blank line
            if lines and lines[-1] != "" and not (pending and pending[0].line < item.meta.line):
                lines.append("")
            flush_comments(item.meta.line, "")
            if lines and lines[-1] != "" and last[0] is not None and item.meta.line > last[0] + 1:
                lines.append("")
            name = item.children[0].children[0].value
            stmts = item.children[1:]
            shares_line = stmts and stmts[0].meta.line == item.meta.line
            tail = None if shares_line else trailing.pop(item.meta.line, None)
            lines.append(f"model {name} {{" + (f"  {tail.rstrip()}" if tail else ""))
            last[0] = item.meta.line
            for stmt in stmts:
                text_, meta = _statement(layout, stmt, filename, src_lines)
                emit(text_, meta, "  ")
            flush_comments(item.meta.end_line, "  ")
            tail = trailing.pop(item.meta.end_line, None)
            lines.append("}" + (f"  {tail.rstrip()}" if tail else ""))
            last[0] = item.meta.end_line
            before_model = True
        else:
            if before_model and lines[-1] != "":
                lines.append("")
            before_model = False
            # consecutive definitions stay grouped as the source grouped them
            text_, meta = _statement(layout, item, filename, src_lines)
            emit(text_, meta, "")
    flush_comments(10**9, "")
    return "\n".join(lines).strip("\n") + "\n"


def _statement(layout: _Layout, stmt, filename="<string>", lines=()):
    if stmt.data != "let":
        return transform(layout, stmt, filename, lines)
    n = next(i for i, c in enumerate(stmt.children) if c.data != "name")
    targets = [c.children[0].value for c in stmt.children[:n]]
    expr, *after = stmt.children[n:]
    text = f"{', '.join(targets)} = {_wrap(transform(layout, expr, filename, lines), _CMP)}"
    if after:
        text += " after [" + ", ".join(c.children[0].value for c in after[1:]) + "]"
    return text, stmt.meta
