"""``gc.train.fit``: the training loop that ``graphc run --train`` and scripts share.

    history = gc.train.fit(sess, train_op, {x: X, y: Y}, loss=loss, batch_size=64, epochs=5,
                           shuffle=True, seed=0, eval_feeds={x: Xt, y: Yt},
                           eval_fetches={"loss": loss, "accuracy": acc}, training=[is_training],
                           log_every=100, logdir="runs/1", saver=saver, save_path="ckpt/model",
                           save_every=500)
    history.to_csv("loss.csv"); history.plot("loss.png")

It slices the feeds into minibatches (those whose placeholder has an unknown first dim; the
others are fed whole), runs ``train_op`` (and ``loss``) per batch, shows a progress bar with
rate and ETA on stderr (tqdm when installed, else a plain line refreshed by time), evaluates
``eval_fetches`` on ``eval_feeds`` with the training switches fed ``False`` at the end of
every epoch, logs to TensorBoard (``logdir``), saves checkpoints every ``save_every`` steps
and, on Ctrl-C, saves one and raises :class:`TrainingInterrupted` (a ``KeyboardInterrupt``)
that carries the history so far.
"""

from __future__ import annotations

import csv
import io
import math
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from .errors import GraphcError, ShapeError, user_location
from .fileio import write_atomic

PLOT_HINT = 'pip install "graphc-compiler[examples]"'


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during ``fit``: ``.history`` holds what was logged, ``.checkpoint`` the path
    saved (or None), ``.step`` the steps completed."""

    def __init__(self, history, checkpoint, step):
        super().__init__(f"interrupted at step {step}")
        self.history, self.checkpoint, self.step = history, checkpoint, step


@dataclass
class History:
    """What ``fit`` logged: one row per logged step (``step``, ``epoch``, ``loss``, ``seconds``)
    and one per evaluation (``step``, ``epoch``, ``eval_<name>`` columns)."""

    rows: list = field(default_factory=list)
    steps: int = 0
    interrupted: bool = False

    @property
    def loss(self) -> list:
        return [r["loss"] for r in self.rows if r.get("loss") is not None]

    def columns(self) -> list:
        cols = [k for k in ("step", "epoch", "loss", "seconds") if any(k in r for r in self.rows)]
        for r in self.rows:
            cols += [k for k in r if k not in cols]
        return cols

    def to_csv(self, path) -> str:
        """Write the rows as CSV (blank where a row has no value); returns ``path``."""
        cols = self.columns() or ["step", "epoch", "loss"]
        text = io.StringIO(newline="")
        w = csv.DictWriter(text, fieldnames=cols, restval="")
        w.writeheader()
        for r in self.rows:
            w.writerow({k: (f"{v:.9g}" if isinstance(v, float) else v) for k, v in r.items()})
        write_atomic(path, text.getvalue())
        return path

    def plot(self, path) -> str:
        """Draw the loss (and evaluation losses/metrics) against the step with matplotlib
        (an optional extra); returns ``path``."""
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            raise GraphcError(f"--plot needs matplotlib: {PLOT_HINT}") from None
        fig, ax = plt.subplots(figsize=(7, 4))
        train = [(r["step"], r["loss"]) for r in self.rows if r.get("loss") is not None]
        if train:
            ax.plot(*zip(*train), label="loss (train)")
        for col in self.columns():
            if col.startswith("eval_"):
                pts = [(r["step"], r[col]) for r in self.rows if r.get(col) is not None]
                ax.plot(*zip(*pts), "o-", label=col[5:] + " (eval)")
        ax.set_xlabel("step")
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(path)
        plt.close(fig)
        return path


# --- progress display ---------------------------------------------------------------------------


class Progress:
    """A progress bar on stderr with rate and ETA, refreshed by time, not by step count: tqdm
    on a terminal when installed (the ``progress`` extra), else a plain line (``\\r``-redrawn on
    a terminal; into a log file, one line every ``interval`` seconds, 10 by default)."""

    def __init__(self, total, desc="train", file=None, disable=False, interval=None):
        self.file = file or sys.stderr
        self.total, self.n, self.desc, self.disable = total, 0, desc, disable
        self.tty = hasattr(self.file, "isatty") and self.file.isatty()
        self.interval = interval if interval is not None else (0.2 if self.tty else 10.0)
        self.start = self.last = time.perf_counter()
        self.postfix = ""
        self._bar = None
        if not disable and self.tty:  # a log file gets plain lines, not \r-redrawn bars
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self._bar = tqdm(
                    total=total,
                    desc=desc,
                    unit="step",
                    file=self.file,
                    mininterval=self.interval,
                    dynamic_ncols=True,
                )

    def update(self, n=1, postfix=None):
        self.n += n
        if postfix is not None:
            self.postfix = postfix
        if self.disable:
            return
        if self._bar is not None:
            if postfix is not None:
                self._bar.set_postfix_str(postfix, refresh=False)
            self._bar.update(n)
            return
        now = time.perf_counter()
        # the first step (training has started), then by time, and the last
        if self.n == n or now - self.last >= self.interval or self.n == self.total:
            self.last = now
            self._print(self.line())

    def line(self) -> str:
        secs = time.perf_counter() - self.start
        rate = self.n / secs if secs > 0 else 0.0
        if self.total:
            eta = (self.total - self.n) / rate if rate > 0 else float("nan")
            head = f"{self.desc} {self.n}/{self.total} ({100 * self.n / self.total:.0f}%)"
        else:
            eta, head = float("nan"), f"{self.desc} {self.n}"
        return f"{head} [{_clock(secs)}<{_clock(eta)}, {rate:.3g} steps/s]" + (
            f" {self.postfix}" if self.postfix else ""
        )

    def _print(self, text):
        if self.tty:
            print("\r" + text + "\x1b[K", end="", file=self.file, flush=True)
        else:
            print(text, file=self.file, flush=True)

    def write(self, message):
        """A log line that does not break the bar."""
        if self._bar is not None:
            self._bar.write(message, file=self.file)
        elif self.tty and not self.disable:
            print("\r\x1b[K" + message, file=self.file, flush=True)
        else:
            print(message, file=self.file, flush=True)

    def close(self):
        if self._bar is not None:
            self._bar.close()
        elif self.tty and not self.disable:
            print(file=self.file, flush=True)


def _clock(secs) -> str:
    if not math.isfinite(secs):
        return "?"
    secs = int(secs)
    h, rem = divmod(secs, 3600)
    return f"{h}:{rem // 60:02d}:{rem % 60:02d}" if h else f"{rem // 60:02d}:{rem % 60:02d}"


# --- the loop -----------------------------------------------------------------------------------


def _batched(feeds) -> tuple[list, int | None]:
    """The feeds sliced per batch (placeholders whose first dim is unknown, or arrays fed to
    a tensor of unknown shape) and the number of examples they share."""
    keys, n = [], None
    for t, v in feeds.items():
        shape = getattr(t, "shape", None)
        arr = np.asarray(v)
        first_unknown = shape is None or (len(shape) > 0 and not isinstance(shape[0], int))
        if arr.ndim == 0 or not first_unknown:
            continue
        if n is not None and len(arr) != n:
            names = ", ".join(
                f"{getattr(k, 'name', k)}: {len(np.asarray(feeds[k]))}" for k in keys + [t]
            )
            raise ShapeError(
                f"fit: the batched feeds have different lengths ({names}); they "
                f"are sliced together, so they must agree",
                user_location(),
            )
        keys.append(t)
        n = len(arr)
    return keys, n


def switch_feeds(training, on: bool) -> dict:
    return {t: np.asarray(on) for t in (training or ())}


def evaluate(sess, fetches, feeds, batch_size=None, training=None) -> dict:
    """``fetches`` (a dict name -> tensor) on ``feeds`` with the training switches off; with
    ``batch_size``, averaged over batches weighted by their size (for means: loss, accuracy)."""
    feeds = {**{k: np.asarray(v) for k, v in feeds.items()}, **switch_feeds(training, False)}
    names = list(fetches)
    keys, n = _batched(feeds)
    if not batch_size or not keys or n is None or n <= batch_size:
        values = sess.run([fetches[k] for k in names], feeds)
        return {k: _scalar(v) for k, v in zip(names, values)}
    total = {k: 0.0 for k in names}
    for lo in range(0, n, batch_size):
        part = dict(feeds)
        for k in keys:
            part[k] = feeds[k][lo : lo + batch_size]
        m = len(part[keys[0]])
        for k, v in zip(names, sess.run([fetches[k] for k in names], part)):
            total[k] += _scalar(v) * m
    return {k: v / n for k, v in total.items()}


def _scalar(v):
    arr = np.asarray(v)
    return float(arr) if arr.size == 1 else float(np.mean(arr))


def fit(
    sess,
    train_op,
    feeds,
    *,
    loss=None,
    batch_size=None,
    epochs=1,
    steps=None,
    shuffle=False,
    seed=None,
    drop_last=False,
    eval_feeds=None,
    eval_fetches=None,
    training=None,
    log_every=0,
    logdir=None,
    summary=None,
    saver=None,
    save_path=None,
    save_every=0,
    callbacks=(),
    progress=True,
    log=None,
) -> History:
    """Train: run ``train_op`` (and ``loss``) over minibatches of ``feeds``.

    - ``batch_size=None``: full batch. ``epochs`` passes over the data, or exactly ``steps``
      updates when given (cycling through epochs). ``shuffle`` draws a new order each epoch
      from ``seed``; ``drop_last`` skips a short final batch.
    - ``training``: boolean tensors (dropout / batch-norm switches) fed ``True`` while
      training and ``False`` in evaluation.
    - ``eval_feeds`` / ``eval_fetches`` (a dict name -> tensor; default ``{"loss": loss}``):
      evaluated at the end of every epoch (and of the run), logged as ``eval_<name>``.
    - ``log_every``: average loss logged (history, ``log``, TensorBoard) every so many steps;
      0 logs once per epoch. ``logdir``: TensorBoard event files (``loss``, ``eval/<name>``,
      the graph, and ``summary`` — a summary op — fetched at each log).
    - ``saver`` + ``save_path``: a checkpoint every ``save_every`` steps and on Ctrl-C.
    - ``callbacks``: functions ``cb(row: dict)`` called with each history row.
    - ``progress``: the bar on stderr. ``log``: where log lines go (default: through the bar).

    Returns the :class:`History`. Ctrl-C saves a checkpoint (when ``saver`` and ``save_path``
    are given) and raises :class:`TrainingInterrupted` carrying the history.
    """
    feeds = {k: np.asarray(v) for k, v in feeds.items()}
    keys, n = _batched(feeds)
    if batch_size is not None and (not isinstance(batch_size, (int, np.integer)) or batch_size < 1):
        raise GraphcError(
            f"fit: batch_size must be a positive int, got {batch_size!r}", user_location()
        )
    if n is None or batch_size is None or batch_size >= n:
        per_epoch = 1
    else:
        per_epoch = n // batch_size if drop_last else -(-n // batch_size)
    if per_epoch == 0:
        raise ShapeError(
            f"fit: {n} examples give no batch of {batch_size} with drop_last", user_location()
        )
    total = int(steps) if steps else per_epoch * int(epochs)
    if (saver is None) != (save_path is None):
        raise GraphcError(
            "fit: saving checkpoints needs both saver= and save_path=", user_location()
        )
    run_fetches = [train_op] + ([loss] if loss is not None else [])
    on = switch_feeds(training, True)
    if eval_feeds is not None and eval_fetches is None:
        if loss is None:
            raise GraphcError("fit: eval_feeds needs eval_fetches= or loss=", user_location())
        eval_fetches = {"loss": loss}
    writer = None
    if logdir is not None:
        from .summary import FileWriter

        writer = FileWriter(logdir, graph=sess.graph)

    history = History()
    bar = Progress(total, disable=not progress)
    say = log or bar.write
    rng = np.random.default_rng(seed)
    step, epoch, window, t0 = 0, 0, [], time.perf_counter()
    saved = None

    def emit(row):
        history.rows.append(row)
        for cb in callbacks:
            cb(row)
        if writer is not None:
            for k, v in row.items():
                if k == "loss":
                    writer.add_scalar("loss", v, row["step"])
                elif k.startswith("eval_"):
                    writer.add_scalar("eval/" + k[5:], v, row["step"])

    def log_train():
        if not window:
            return
        row = {
            "step": step,
            "epoch": epoch,
            "loss": float(np.mean(window)),
            "seconds": round(time.perf_counter() - t0, 3),
        }
        window.clear()
        emit(row)
        if writer is not None and summary is not None:
            writer.add_summary(sess.run(summary, {**feeds, **switch_feeds(training, False)}), step)
        say(f"step {step}/{total}  epoch {epoch}  loss {row['loss']:.6g}")

    def run_eval():
        if eval_feeds is None:
            return
        values = evaluate(sess, eval_fetches, eval_feeds, batch_size, training)
        emit({"step": step, "epoch": epoch, **{f"eval_{k}": v for k, v in values.items()}})
        say(f"eval at step {step}: " + ", ".join(f"{k} = {v:.6g}" for k, v in values.items()))

    try:  # Ctrl-C while the step compiles saves too: the weights are already there
        step_fn = sess.make_callable(run_fetches, list(feeds) + list(on))
        while step < total:
            epoch += 1
            order = rng.permutation(n) if (shuffle and n) else None
            for b in range(per_epoch):
                if step >= total:
                    break
                part = dict(feeds)
                if keys and per_epoch > 1:
                    lo = b * batch_size
                    idx = (
                        order[lo : lo + batch_size]
                        if order is not None
                        else slice(lo, lo + batch_size)
                    )
                    for k in keys:
                        part[k] = feeds[k][idx]
                elif order is not None:
                    for k in keys:
                        part[k] = feeds[k][order]
                out = step_fn(*part.values(), *on.values())
                step += 1
                history.steps = step
                if loss is not None:
                    window.append(float(np.asarray(out[1])))
                    bar.update(1, f"loss {window[-1]:.4g}")
                else:
                    bar.update(1)
                if log_every and step % log_every == 0:
                    log_train()
                if save_every and step % save_every == 0:
                    saved = saver.save(sess, save_path)
                    say(f"step {step}: saved {saved}")
            if not log_every:
                log_train()
            run_eval()
        log_train()
    except KeyboardInterrupt:
        bar.close()
        history.interrupted = True
        log_train()
        if saver is not None and save_path is not None:
            saved = saver.save(sess, save_path)
        if writer is not None:
            writer.close()
        raise TrainingInterrupted(history, saved if saver is not None else None, step) from None
    bar.close()
    if writer is not None:
        writer.close()
    return history
