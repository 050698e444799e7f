"""More of TF 1.x's ``tf.nn``: ``top_k``, ``conv1d``, the candidate samplers and the sampled
losses (``nce_loss``, ``sampled_softmax_loss``) that word2vec tutorials use, and
``tf.scatter_update``.

The ops here (top_k and its gradient, the log-uniform sampler) are compat-only OpDefs,
kept out of the op registry like ``tf.string``'s constant; everything else is built from
graphc's ops, so it differentiates and runs on every backend."""

from __future__ import annotations

import math
from collections import namedtuple

import numpy as np

from .. import dtypes as D
from ..errors import ShapeError, user_location
from ..ir.node import Tensor
from ..ops import conv as _conv
from ..ops.array import (
    cast,
    concat,
    expand_dims,
    gather,
    one_hot,
    ones_like,
    reshape,
    squeeze,
    stop_gradient,
    transpose,
    zeros_like,
)
from ..ops.elementwise import equal, log, where
from ..ops.linalg import matmul
from ..ops.nn import sigmoid_cross_entropy_with_logits, softmax_cross_entropy_with_logits
from ..ops.reduce import reduce_any, reduce_max, reduce_sum
from ..ops.registry import OpDef
from ..ops.sources import constant, convert
from ..ops.state import assign

# --- top_k ------------------------------------------------------------------------------------


TopKV2 = namedtuple("TopKV2", ["values", "indices"])


def _top_k_infer(ins, attrs):
    x, k = ins[0], attrs["k"]
    if x.shape is None:
        return [(x.dtype, None), (D.int32, None)]
    if not x.shape:
        raise ValueError("top_k needs a tensor of rank >= 1")
    last = x.shape[-1]
    if isinstance(last, int) and k > last:
        raise ValueError(f"top_k: k={k} is larger than the last dimension ({last})")
    shape = tuple(x.shape[:-1]) + (k,)
    return [(x.dtype, shape), (D.int32, shape)]


def _top_k_kernel(x, k, sorted):  # noqa: A002 - TF's name
    if k > x.shape[-1]:
        raise ValueError(f"top_k: k={k} is larger than the last dimension ({x.shape[-1]})")
    # a stable sort of -x: equal values keep their order (lower index first), as TF
    idx = np.argsort(-x, axis=-1, kind="stable")[..., :k]
    return np.take_along_axis(x, idx, axis=-1), idx.astype(np.int32)


def _top_k_grad_kernel(g, idx, x):
    out = np.zeros(x.shape, dtype=g.dtype)
    np.put_along_axis(out, idx.astype(np.intp), g, axis=-1)
    return out


TOP_K_GRAD = OpDef(
    "top_k_grad",
    lambda ins, a: [(ins[0].dtype, ins[2].shape)],
    numpy=_top_k_grad_kernel,
    differentiable=False,
    doc="The gradient of top_k's values: g put back at the chosen indices.",
)

TOP_K = OpDef(
    "top_k",
    _top_k_infer,
    numpy=_top_k_kernel,
    grad=lambda op, g, _gi=None: [TOP_K_GRAD(g, op.outputs[1], op.inputs[0])],
    doc="The k largest entries of the last axis, and their indices.",
)


def top_k(input, k=1, sorted=True, name=None):  # noqa: A002 - TF's names
    """``(values, indices)`` of the ``k`` largest entries along the last axis, largest
    first (ties: lower index first)."""
    x = convert(input)
    if isinstance(k, Tensor):
        from .dynamic import static_value

        value = static_value(k)
        if value is None:
            raise ShapeError("top_k needs a static k", user_location())
        k = int(value)
    values, indices = TOP_K(x, name=name or "TopKV2", k=int(k), sorted=bool(sorted))
    return TopKV2(values, indices)


# --- conv1d -----------------------------------------------------------------------------------


def conv1d(
    value=None,
    filters=None,
    stride=1,
    padding="VALID",
    use_cudnn_on_gpu=None,
    data_format=None,
    name=None,
    input=None,
    dilations=None,
):  # noqa: A002
    """A 1-d convolution of ``(batch, width, in_channels)`` with ``(width, in, out)``
    filters: TF's own reduction to conv2d over a height of 1."""
    x = convert(value if value is not None else input)
    w = convert(filters)
    if data_format not in (None, "NWC"):
        raise ShapeError(
            f"conv1d: data_format {data_format!r} is not supported (use NWC)", user_location()
        )
    if isinstance(stride, (list, tuple)):
        stride = stride[1] if len(stride) == 3 else stride[0]
    y = _conv.conv2d(
        expand_dims(x, 1), expand_dims(w, 0), strides=[1, 1, int(stride), 1], padding=padding
    )
    return squeeze(y, [1], name=name)


# --- candidate samplers -----------------------------------------------------------------------


def _sampler_infer(ins, attrs):
    n = attrs["num_sampled"]
    true = ins[0].shape
    return [(D.int64, (n,)), (D.float32, true), (D.float32, (n,))]


def _log_uniform_p(ids, range_max):
    ids = ids.astype(np.float64)
    return (np.log(ids + 2.0) - np.log(ids + 1.0)) / math.log(range_max + 1.0)


def _sampler_kernel(ctx, node, true_classes, num_sampled, unique, range_max, seed):
    """TF's LogUniformCandidateSampler: classes drawn with P(k) = log((k+2)/(k+1)) /
    log(range_max+1) (Zipf-like, frequent classes first); with ``unique`` the draws repeat
    until ``num_sampled`` different classes came up, and the expected counts account for
    the number of tries, as TF computes them."""
    rng = ctx.rng(node)
    log_range = math.log(range_max + 1.0)

    def draw(n):
        v = np.exp(rng.random(n) * log_range).astype(np.int64) - 1
        return np.clip(v, 0, range_max - 1)

    if unique:
        if num_sampled > range_max:
            raise ValueError(f"cannot sample {num_sampled} unique classes out of {range_max}")
        seen, order, tries = set(), [], 0
        while len(order) < num_sampled:
            for c in draw(max(num_sampled, 16)).tolist():
                tries += 1
                if c not in seen:
                    seen.add(c)
                    order.append(c)
                    if len(order) == num_sampled:
                        break
        sampled = np.array(order, np.int64)

        def expected(ids):
            p = _log_uniform_p(ids, range_max)
            return (-np.expm1(tries * np.log1p(-p))).astype(np.float32)
    else:
        sampled = draw(num_sampled)

        def expected(ids):
            return (_log_uniform_p(ids, range_max) * num_sampled).astype(np.float32)

    return sampled, expected(np.asarray(true_classes)), expected(sampled)


LOG_UNIFORM_SAMPLER = OpDef(
    "log_uniform_candidate_sampler",
    _sampler_infer,
    numpy=_sampler_kernel,
    kind="random",
    stateful=True,
    differentiable=False,
    doc="Classes sampled log-uniformly, with the expected counts of the true and sampled ones.",
)


def log_uniform_candidate_sampler(
    true_classes, num_true, num_sampled, unique, range_max, seed=None, name=None
):
    """``(sampled_candidates, true_expected_count, sampled_expected_count)``."""
    t = convert(true_classes)
    return LOG_UNIFORM_SAMPLER(
        cast(t, D.int64) if t.dtype is not D.int64 else t,
        name=name or "LogUniformCandidateSampler",
        num_sampled=int(num_sampled),
        unique=bool(unique),
        range_max=int(range_max),
        seed=None if seed is None else int(seed),
    )


# --- nce_loss and sampled_softmax_loss --------------------------------------------------------


def _sampled_logits(
    weights,
    biases,
    labels,
    inputs,
    num_sampled,
    num_classes,
    num_true,
    sampled_values,
    subtract_log_q,
    remove_accidental_hits,
):
    """TF's ``_compute_sampled_logits``: the true classes' logits and the sampled ones'."""
    if isinstance(weights, (list, tuple)):
        weights = concat(list(weights), 0) if len(weights) > 1 else weights[0]
    w, b, x = convert(weights), convert(biases), convert(inputs)
    labels = convert(labels)
    if labels.dtype is not D.int64:
        labels = cast(labels, D.int64)
    labels = reshape(labels, [-1, num_true])
    if sampled_values is None:
        sampled_values = log_uniform_candidate_sampler(
            labels, num_true, num_sampled, True, num_classes
        )
    sampled, true_expected, sampled_expected = (stop_gradient(convert(v)) for v in sampled_values)
    flat_labels = reshape(labels, [-1])
    true_w = gather(w, flat_labels)  # (batch * num_true, dim)
    true_b = gather(b, flat_labels)
    dim = x.shape[-1] if x.shape else None
    if not isinstance(dim, int):  # inputs of unknown rank or width: the weights' width
        dim = w.shape[-1] if w.shape and isinstance(w.shape[-1], int) else -1
    true_w = reshape(true_w, [-1, num_true, dim])
    true_logits = reduce_sum(expand_dims(x, 1) * true_w, axis=2) + reshape(true_b, [-1, num_true])
    sampled_logits = matmul(x, gather(w, sampled), transpose_b=True) + gather(b, sampled)
    if remove_accidental_hits:
        hit = reduce_any(equal(expand_dims(labels, 2), reshape(sampled, [1, 1, -1])), axis=1)
        lowest = constant(np.finfo(sampled_logits.dtype.np).min, dtype=sampled_logits.dtype)
        sampled_logits = where(hit, lowest, sampled_logits)  # TF adds -FLT_MAX to them
    if subtract_log_q:
        true_logits = true_logits - log(cast(true_expected, true_logits.dtype))
        sampled_logits = sampled_logits - log(cast(sampled_expected, sampled_logits.dtype))
    return true_logits, sampled_logits


def nce_loss(
    weights,
    biases,
    labels,
    inputs,
    num_sampled,
    num_classes,
    num_true=1,
    sampled_values=None,
    remove_accidental_hits=False,
    partition_strategy="mod",
    name="nce_loss",
):
    """Noise-contrastive estimation: one loss per example (sum it or average it)."""
    true_logits, sampled_logits = _sampled_logits(
        weights,
        biases,
        labels,
        inputs,
        num_sampled,
        num_classes,
        num_true,
        sampled_values,
        True,
        remove_accidental_hits,
    )
    true_xent = sigmoid_cross_entropy_with_logits(
        labels=ones_like(true_logits) / num_true, logits=true_logits
    )
    sampled_xent = sigmoid_cross_entropy_with_logits(
        labels=zeros_like(sampled_logits), logits=sampled_logits
    )
    return reduce_sum(true_xent, axis=1) + reduce_sum(sampled_xent, axis=1)


def sampled_softmax_loss(
    weights,
    biases,
    labels,
    inputs,
    num_sampled,
    num_classes,
    num_true=1,
    sampled_values=None,
    remove_accidental_hits=True,
    partition_strategy="mod",
    name="sampled_softmax_loss",
    seed=None,
):
    """The softmax cross-entropy over the true classes and ``num_sampled`` sampled ones."""
    true_logits, sampled_logits = _sampled_logits(
        weights,
        biases,
        labels,
        inputs,
        num_sampled,
        num_classes,
        num_true,
        sampled_values,
        True,
        remove_accidental_hits,
    )
    logits = concat([true_logits, sampled_logits], 1)
    targets = concat([ones_like(true_logits) / num_true, zeros_like(sampled_logits)], 1)
    return softmax_cross_entropy_with_logits(labels=stop_gradient(targets), logits=logits)


# --- scatter_update ---------------------------------------------------------------------------


def scatter_update(ref, indices, updates, use_locking=True, name=None):
    """``ref[indices] = updates`` (rows of a variable), returning the updated value, as
    ``tf.scatter_update``. For an index that repeats TF leaves undefined which update
    wins; here their sum is written."""
    return _scatter(ref, indices, updates, name, add=False)


def scatter_add(ref, indices, updates, use_locking=False, name=None):
    """``ref[indices] += updates`` (repeated indices add up, as in TF)."""
    return _scatter(ref, indices, updates, name, add=True)


def scatter_sub(ref, indices, updates, use_locking=False, name=None):
    return _scatter(ref, indices, -convert(updates), name, add=True)


def _scatter(ref, indices, updates, name, add):
    n = ref.shape[0] if ref.shape is not None else None
    if not isinstance(n, int):
        raise ShapeError(
            f"scatter_update needs a variable with a static first dimension: {ref.describe()}",
            user_location(),
        )
    idx = convert(indices)
    upd = convert(updates, like=ref)
    if idx.shape is not None and len(idx.shape) == 0:
        idx, upd = reshape(idx, [1]), expand_dims(upd, 0)
    idx = reshape(idx, [-1])
    rest = list(ref.shape[1:])
    flat_upd = reshape(upd, [-1] + rest) if rest else reshape(upd, [-1])
    hot = one_hot(idx, n, dtype=ref.dtype)  # (k, n)
    scattered = matmul(
        transpose(hot),
        reshape(flat_upd, [-1, int(np.prod(rest))]) if rest else reshape(flat_upd, [-1, 1]),
    )  # (n, prod(rest))
    scattered = reshape(scattered, [n] + rest)
    if add:
        return assign(ref, ref + scattered, name=name)
    touched = reduce_max(hot, axis=0)  # (n,)
    keep = reshape(1 - touched, [n] + [1] * len(rest))
    return assign(ref, ref * keep + scattered, name=name)
