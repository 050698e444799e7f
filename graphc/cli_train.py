"""``graphc run --train``'s flags and driver: the command-line face of ``gc.train.fit``
(graphc/fit.py), kept out of cli.py so the command's own module stays about commands."""

from __future__ import annotations

import sys
import time

from .errors import GraphcError
from .fit import TrainingInterrupted, fit, switch_feeds


def training_switches(inputs) -> list:
    """A ``.g`` model's training switches: boolean scalar inputs with a default
    (``input training : bool[] = true``, fed to ``dropout(..., training=training)``)."""
    return [
        t
        for t in inputs
        if t.op.type == "placeholder_with_default"
        and t.dtype.name == "bool"
        and t.shape is not None
        and len(t.shape) == 0
    ]


def add_arguments(c) -> None:
    """``graphc run``'s training flags."""
    from .cli import _positive

    c.add_argument(
        "--train",
        type=_positive,
        nargs="?",
        const=0,
        metavar="STEPS",
        help="train (STEPS updates; without STEPS, --epochs passes over the data)",
    )
    c.add_argument(
        "--batch-size", type=_positive, metavar="N", help="minibatch size (default: the whole feed)"
    )
    c.add_argument(
        "--epochs",
        type=_positive,
        metavar="N",
        help="passes over the data (default 1; implies --train)",
    )
    c.add_argument("--shuffle", action="store_true", help="a new example order every epoch")
    c.add_argument("--seed", type=int, default=0, help="the --shuffle order's seed (default 0)")
    c.add_argument(
        "--eval",
        action="append",
        metavar="NAME=FILE",
        help="evaluation feeds, run with the training switches off after each epoch",
    )
    c.add_argument(
        "--log-every",
        type=_positive,
        metavar="N",
        help="log the mean loss every N steps (default: once per epoch)",
    )
    c.add_argument(
        "--save-every",
        type=_positive,
        metavar="N",
        help="with --save: write the checkpoint every N steps",
    )
    c.add_argument("--history", metavar="FILE.csv", help="write the loss history as CSV")
    c.add_argument("--plot", metavar="FILE.png", help="plot the loss (needs matplotlib)")
    c.add_argument("--logdir", metavar="DIR", help="write TensorBoard event files here")
    c.add_argument("--no-progress", action="store_true", help="no progress bar")


def wants_training(args) -> bool:
    return args.train is not None or args.epochs is not None


def check_arguments(args) -> None:
    if args.save_every and not args.save:
        raise GraphcError("--save-every needs --save CKPT (where to write the checkpoint)")
    if not wants_training(args):
        used = [
            f
            for f, v in (
                ("--batch-size", args.batch_size),
                ("--shuffle", args.shuffle),
                ("--eval", args.eval),
                ("--log-every", args.log_every),
                ("--save-every", args.save_every),
                ("--history", args.history),
                ("--plot", args.plot),
                ("--logdir", args.logdir),
            )
            if v
        ]
        if used:
            raise GraphcError(
                f"{', '.join(used)} only apply when training: add --train [STEPS] or --epochs N"
            )


def run_training(sess, graph, clause, feeds, args, saver, eval_feeds) -> dict:
    """Train as the flags say; print the result; return the feeds for the final fetch
    (training switches off). Ctrl-C saves a checkpoint when --save is given and says where."""
    from .cli import _inputs

    switches = [t for t in training_switches(_inputs(graph)) if t not in feeds]
    eval_fetches = None
    if eval_feeds:
        from .cli import _fetches

        eval_fetches = {
            t.op.name: t
            for t in _fetches(graph, args.fetch)
            if t.shape is not None
            and all(d == 1 for d in t.shape if isinstance(d, int))
            and t.dtype.name != "object"
        }
        eval_fetches.setdefault(clause.loss.op.name, clause.loss)
    start = time.perf_counter()
    try:
        history = fit(
            sess,
            clause.op,
            feeds,
            loss=clause.loss,
            batch_size=args.batch_size,
            epochs=args.epochs or 1,
            steps=args.train or None,
            shuffle=args.shuffle,
            seed=args.seed,
            eval_feeds=eval_feeds or None,
            eval_fetches=eval_fetches,
            training=switches,
            log_every=args.log_every or _default_log_every(args),
            logdir=args.logdir,
            saver=saver if args.save else None,
            save_path=args.save,
            save_every=args.save_every or 0,
            progress=not args.no_progress,
        )
    except TrainingInterrupted as e:
        _outputs_of(e.history, args)
        where = (
            f"saved checkpoint {e.checkpoint}"
            if e.checkpoint
            else "nothing saved (give --save CKPT to keep the weights on Ctrl-C)"
        )
        print(f"interrupted at step {e.step}: {where}", file=sys.stderr, flush=True)
        raise
    secs = time.perf_counter() - start
    loss = history.loss[-1] if history.loss else float("nan")
    print(f"trained {history.steps} steps in {secs:.2f}s: {clause.loss.op.name} = {loss:.6g}")
    for row in history.rows[::-1]:
        evals = {k[5:]: v for k, v in row.items() if k.startswith("eval_")}
        if evals:
            print("eval: " + ", ".join(f"{k} = {v:.6g}" for k, v in evals.items()))
            break
    _outputs_of(history, args)
    return {**feeds, **switch_feeds(switches, False)}


def _outputs_of(history, args):
    if args.history:
        print(f"wrote {history.to_csv(args.history)}", file=sys.stderr)
    if args.plot:
        try:
            print(f"wrote {history.plot(args.plot)}", file=sys.stderr)
        except GraphcError as e:
            print(f"no plot: {e.message}", file=sys.stderr)
    if args.logdir:
        print(f"TensorBoard: tensorboard --logdir {args.logdir}", file=sys.stderr)


def _default_log_every(args) -> int:
    """Without ``--log-every``: a line per epoch, except that full-batch training (every
    epoch one step) logs ten times in all rather than once per step."""
    if args.batch_size is None and args.train:
        return max(1, args.train // 10)
    return 0
