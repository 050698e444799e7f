"""``tf.contrib.framework``: ``arg_scope`` (default arguments for a set of layer
functions, as TF-Slim code uses it) and the variable helpers around it."""

from __future__ import annotations

import contextlib
import functools

from ...errors import GraphcError, user_location
from .._support import module_getattr

_STACK: list = [{}]  # the arg scopes in force: {function key: {argument: value}}


def _key(fn):
    return getattr(fn, "_arg_scope_key", fn)


def add_arg_scope(fn):
    """Make ``fn`` take its defaults from the enclosing ``arg_scope``\\s; arguments given in
    the call win."""

    @functools.wraps(fn)
    def call(*args, **kwargs):
        defaults = _STACK[-1].get(_key(call))
        if defaults:
            kwargs = {**defaults, **kwargs}
        return fn(*args, **kwargs)

    call._arg_scope_key = call
    return call


def has_arg_scope(fn):
    return hasattr(fn, "_arg_scope_key")


@contextlib.contextmanager
def arg_scope(list_ops_or_scope, **kwargs):
    """``with arg_scope([fully_connected, conv2d], activation_fn=tf.nn.relu): ...``; nested
    scopes add to (and override) the outer ones; ``arg_scope(saved_scope)`` re-enters a
    scope captured as ``with arg_scope(...) as sc``."""
    if isinstance(list_ops_or_scope, dict):
        if kwargs:
            raise GraphcError("arg_scope(scope) takes no keyword arguments", user_location())
        _STACK.append(dict(list_ops_or_scope))
    else:
        current = {k: dict(v) for k, v in _STACK[-1].items()}
        for fn in list_ops_or_scope:
            if not has_arg_scope(fn):
                raise GraphcError(
                    f"{getattr(fn, '__name__', fn)!r} is not decorated with "
                    "add_arg_scope, so arg_scope cannot give it defaults",
                    user_location(),
                )
            current.setdefault(_key(fn), {}).update(kwargs)
        _STACK.append(current)
    try:
        yield _STACK[-1]
    finally:
        _STACK.pop()


def current_arg_scope():
    return _STACK[-1]


def arg_scoped_arguments(fn):
    import inspect

    return list(inspect.signature(fn).parameters)


def get_variables(scope=None, suffix=None, collection="variables"):
    from ..v1 import get_collection

    vs = get_collection(collection, scope)
    return [v for v in vs if suffix is None or v.op.name.endswith(suffix)]


def get_model_variables(scope=None, suffix=None):
    return get_variables(scope, suffix, "variables")


def get_trainable_variables(scope=None, suffix=None):
    return get_variables(scope, suffix, "trainable_variables")


def get_or_create_global_step(graph=None):
    from ... import train

    return train.get_or_create_global_step(graph)


def get_global_step(graph=None):
    from ... import train

    return train.get_global_step(graph)


__getattr__ = module_getattr("contrib.framework")
