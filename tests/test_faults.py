"""Saving survives being killed: a process saving checkpoints in a loop is SIGKILLed at
random (seeded) points, and after every kill the directory's state file names a loadable
checkpoint, every checkpoint it lists loads, and ``latest_checkpoint`` finds one. A save
after the kills removes the temporary files they left, and ``max_to_keep`` holds across the
restarts (issue #16)."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from graphc import checkpoint

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")

KEEP = 2

CHILD = (
    r"""
import sys
import numpy as np
import graphc as gc

directory, start, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
w = gc.Variable(np.zeros(1_000_000, np.float32), name="w")     # 4 MB: a save takes a while
step = gc.Variable(np.int64(0), name="step")
saver = gc.train.Saver(max_to_keep=%d)
with gc.Session() as sess:
    sess.run(gc.global_variables_initializer())
    print("ready", flush=True)
    for i in range(start, start + count):
        w.load(np.full(1_000_000, i, np.float32), sess)
        step.load(i, sess)
        saver.save(sess, directory + "/ckpt", global_step=i)
"""
    % KEEP
)


def _child(directory, start, count):
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(directory), str(start), str(count)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _check_invariant(directory):
    state_path = directory / "checkpoint"
    if not state_path.exists():  # killed before its first save finished: nothing promised
        return None
    state = json.loads(state_path.read_text())
    latest = directory / state["latest"]
    assert checkpoint.loadable(str(latest)), f"the state names {latest}, which does not load"
    for name in state["all"]:
        assert checkpoint.loadable(str(directory / name)), f"the state lists {name}: not loadable"
    found = checkpoint.latest_checkpoint(str(directory))
    assert found is not None and checkpoint.loadable(found)
    values = checkpoint.read(found)
    assert (values["w"] == values["step"]).all()  # one save's values, never a mix
    return int(values["step"])


def test_state_file_always_names_a_loadable_checkpoint_across_kills(tmp_path):
    rng = random.Random(1234)
    kills, steps_seen = 0, []
    for round_ in range(5):
        child = _child(tmp_path, 1000 * (round_ + 1), 200)
        assert child.stdout.readline().strip() == "ready", child.stderr.read()
        time.sleep(rng.uniform(0.0, 0.4))
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
            kills += 1
        child.wait(timeout=60)
        child.stdout.close()
        child.stderr.close()
        seen = _check_invariant(tmp_path)
        if seen is not None:
            assert not steps_seen or seen >= steps_seen[-1]  # never goes back in time
            steps_seen.append(seen)
    assert kills >= 3

    # a restarted saver: the orphaned temporary files go, max_to_keep counts the old ones
    child = _child(tmp_path, 9000, 3)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    names = sorted(os.listdir(tmp_path))
    assert not [n for n in names if n.endswith(".tmp")], names
    ckpts = [n for n in names if n.startswith("ckpt-")]
    assert ckpts == ["ckpt-9001", "ckpt-9002"], names
    assert _check_invariant(tmp_path) == 9002
    assert checkpoint.latest_checkpoint(str(tmp_path)) == str(tmp_path / "ckpt-9002")


def test_latest_checkpoint_falls_back_when_the_named_file_is_gone(tmp_path):
    import numpy as np

    good = tmp_path / "ckpt-1"
    good.write_bytes(checkpoint.encode({"w": np.ones(2, np.float32)}))
    (tmp_path / "checkpoint").write_text(json.dumps({"latest": "ckpt-2", "all": ["ckpt-2"]}))
    assert checkpoint.latest_checkpoint(str(tmp_path)) == str(good)
    (tmp_path / "ckpt-2").write_bytes(b"\0" * 100)  # named, but not loadable
    assert checkpoint.latest_checkpoint(str(tmp_path)) == str(good)
    good.unlink()
    assert checkpoint.latest_checkpoint(str(tmp_path)) is None


def test_a_save_removes_temporary_files_of_dead_processes_only(tmp_path):
    import numpy as np

    import graphc as gc

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    from graphc.fileio import _host

    orphan = tmp_path / f"ckpt-7.{_host()}.{dead.pid}.0123abcd.tmp"  # as write_atomic names them
    orphan.write_bytes(b"half a checkpoint")
    mine = tmp_path / f"ckpt-8.{_host()}.{os.getpid()}.0123abcd.tmp"  # a save still in flight
    mine.write_bytes(b"")
    elsewhere = tmp_path / f"ckpt-9.otherhost.{dead.pid}.0123abcd.tmp"  # another machine's
    elsewhere.write_bytes(b"")
    unrelated = tmp_path / "notes.tmp"
    unrelated.write_bytes(b"")
    v = gc.Variable(np.ones(2, np.float32), name="v")
    with gc.Session() as sess:
        sess.run(v.initializer)
        gc.train.Saver([v]).save(sess, str(tmp_path / "ckpt"), global_step=9)
    assert not orphan.exists() and mine.exists() and unrelated.exists() and elsewhere.exists()
    old = time.time() - 2 * 24 * 3600
    os.utime(elsewhere, (old, old))  # a day old: an orphan whoever made it
    with gc.Session() as sess:
        sess.run(v.initializer)
        gc.train.Saver([v]).save(sess, str(tmp_path / "ckpt"), global_step=10)
    assert not elsewhere.exists() and mine.exists()
