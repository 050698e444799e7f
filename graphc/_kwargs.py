"""Keyword arguments checked, never swallowed: a misspelled ``activaton=`` or ``trainng=``
would otherwise be ignored and change what the program computes without a word."""

from __future__ import annotations

import difflib
import functools
import inspect

from .errors import ArgumentError, user_location


def did_you_mean(name: str, candidates) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``candidates``, or ``""``."""
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_kwargs(what: str, given, allowed) -> None:
    """Raise ArgumentError for the first name in ``given`` not in ``allowed``."""
    allowed = set(allowed)
    for name in given:
        if name not in allowed:
            raise ArgumentError(
                f"{what}() got an unexpected keyword argument {name!r}"
                f"{did_you_mean(name, allowed)}",
                user_location(),
            )


def parameters(fn) -> set:
    """The names ``fn`` takes as keywords (without its ``**kwargs``)."""
    return {
        p.name
        for p in inspect.signature(fn).parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }


def accepts(*also: str, what: str | None = None):
    """Decorate a function whose ``**kwargs`` takes only the names ``also`` (TF's arguments
    that graphc accepts and ignores): any other keyword raises ArgumentError."""

    def wrap(fn):
        allowed = parameters(fn) | set(also)
        label = what or fn.__qualname__.replace(".__init__", "")

        @functools.wraps(fn)
        def call(*args, **kwargs):
            for name in kwargs:
                if name not in allowed:
                    check_kwargs(label, kwargs, allowed)
            return fn(*args, **kwargs)

        return call

    return wrap


# TF 1.x's keyword arguments that graphc's layers accept and have no use for
TF_LAYER = (
    "kernel_regularizer",
    "bias_regularizer",
    "activity_regularizer",
    "kernel_constraint",
    "bias_constraint",
    "reuse",
    "dtype",
    "_reuse",
    "_scope",
)
TF_BATCH_NORM = (
    "beta_initializer",
    "gamma_initializer",
    "moving_mean_initializer",
    "moving_variance_initializer",
    "beta_regularizer",
    "gamma_regularizer",
    "beta_constraint",
    "gamma_constraint",
    "renorm",
    "renorm_clipping",
    "renorm_momentum",
    "fused",
    "virtual_batch_size",
    "adjustment",
    "reuse",
)
TF_CONV = TF_LAYER + ("data_format", "dilation_rate")
TF_DROPOUT = ("noise_shape",)
