"""gc.train.Saver: round trips, atomic writes, and checkpoints that must be refused
without touching any variable."""

import hashlib
import json
import os

import numpy as np
import pytest

import graphc as gc
from graphc import checkpoint


def _model():
    w = gc.Variable(np.arange(6, dtype=np.float32).reshape(2, 3), name="w")
    b = gc.Variable(np.array([1, 2], dtype=np.int64), name="b")
    return w, b


def _values(sess, *vs):
    return [sess.run(v).copy() for v in vs]


def test_round_trip_restores_values_dtypes_and_optimizer_slots(tmp_path):
    w, b = _model()
    loss = gc.reduce_sum(gc.square(w))
    train = gc.train.AdamOptimizer(0.1).minimize(loss)
    saver = gc.train.Saver()  # built after the optimizer
    path = str(tmp_path / "model.ckpt")
    with gc.Session() as sess:
        sess.run(gc.global_variables_initializer())
        for _ in range(3):
            sess.run(train)
        assert saver.save(sess, path) == path
        saved = {v.op.name: sess.run(v) for v in gc.global_variables()}
        next_loss = sess.run([train, loss])[1]
    with gc.Session() as fresh:
        saver.restore(fresh, path)
        for v in gc.global_variables():
            got = fresh.run(v)
            np.testing.assert_array_equal(got, saved[v.op.name])
            assert got.dtype == v.dtype.np
        assert "w/Adam" in saved and "beta1_power" in saved
        # the restored Adam state continues exactly where the saved one would have
        assert fresh.run([train, loss])[1] == pytest.approx(next_loss)


def test_global_step_suffix_max_to_keep_and_latest_checkpoint(tmp_path):
    w, b = _model()
    saver = gc.train.Saver(max_to_keep=2)
    prefix = str(tmp_path / "ckpt")
    with gc.Session() as sess:
        sess.run(gc.global_variables_initializer())
        paths = [saver.save(sess, prefix, global_step=s) for s in (1, 2, 3)]
    assert paths[-1] == prefix + "-3"
    assert not os.path.exists(paths[0]) and os.path.exists(paths[1])
    assert gc.train.latest_checkpoint(str(tmp_path)) == paths[-1]
    assert gc.train.latest_checkpoint(str(tmp_path / "nowhere")) is None


def test_var_list_as_dict_restores_into_other_names(tmp_path):
    w, b = _model()
    path = str(tmp_path / "m")
    with gc.Session() as sess:
        sess.run(gc.global_variables_initializer())
        gc.train.Saver({"weights": w}).save(sess, path)
    gc.reset_default_graph()
    other = gc.Variable(np.zeros((2, 3), np.float32), name="other")
    with gc.Session() as sess:
        gc.train.Saver({"weights": other}).restore(sess, path)
        np.testing.assert_array_equal(sess.run(other), np.arange(6).reshape(2, 3))


def _trained_and_saved(tmp_path):
    w, b = _model()
    saver = gc.train.Saver()
    path = str(tmp_path / "good.ckpt")
    sess = gc.Session()
    sess.run(gc.global_variables_initializer())
    saver.save(sess, path)
    sess.run([w.assign(w * 10), b.assign(b * 10)])  # the values that must survive
    return w, b, saver, path, sess


@pytest.mark.parametrize(
    "damage", ["flip_payload", "flip_header", "truncate", "empty", "garbage", "missing"]
)
def test_damaged_checkpoints_raise_and_leave_variables_untouched(tmp_path, damage):
    w, b, saver, path, sess = _trained_and_saved(tmp_path)
    before = _values(sess, w, b)
    blob = bytearray(open(path, "rb").read())
    if damage == "flip_payload":
        blob[-40] ^= 0xFF
    elif damage == "flip_header":
        blob[20] ^= 0x01
    elif damage == "truncate":
        blob = blob[: len(blob) // 2]
    elif damage == "empty":
        blob = b""
    elif damage == "garbage":
        blob = b"\x80\x04\x95" + b"x" * 100  # e.g. a pickle: refused, never loaded
    if damage == "missing":
        os.unlink(path)
    else:
        open(path, "wb").write(bytes(blob))
    with pytest.raises(gc.CheckpointError):
        saver.restore(sess, path)
    for got, want in zip(_values(sess, w, b), before, strict=True):
        np.testing.assert_array_equal(got, want)


def test_mismatched_checkpoint_leaves_every_variable_untouched(tmp_path):
    w, b = _model()
    path = str(tmp_path / "m")
    with gc.Session() as sess:
        sess.run(gc.global_variables_initializer())
        gc.train.Saver().save(sess, path)
    gc.reset_default_graph()
    # "a" comes first and matches; "w" has another shape: nothing may be assigned
    a = gc.Variable(np.float32(5), name="a")
    w2 = gc.Variable(np.zeros((3, 2), np.float32), name="w")
    with gc.Session() as sess:
        sess.run(gc.global_variables_initializer())
        with pytest.raises(gc.CheckpointError, match="'w'.*shape"):
            gc.train.Saver({"w": w2, "b": a}).restore(sess, path)
        with pytest.raises(gc.CheckpointError, match="'b'.*int64.*float32"):
            gc.train.Saver({"b": a}).restore(sess, path)
        with pytest.raises(gc.CheckpointError, match="no value for variable 'a'"):
            gc.train.Saver([a, w2]).restore(sess, path)
        assert sess.run(a) == 5.0
        np.testing.assert_array_equal(sess.run(w2), np.zeros((3, 2)))


def test_saving_an_uninitialized_variable_is_an_error(tmp_path):
    _model()
    with gc.Session() as sess, pytest.raises(gc.CheckpointError, match="not initialized"):
        gc.train.Saver().save(sess, str(tmp_path / "x"))


def test_atomic_write_leaves_no_temporary_files_and_replaces_whole(tmp_path):
    path = str(tmp_path / "f")
    checkpoint.write_atomic(path, b"old")
    checkpoint.write_atomic(path, b"new contents")
    assert open(path, "rb").read() == b"new contents"
    assert os.listdir(tmp_path) == ["f"]


def test_format_is_safetensors_json_and_raw_bytes_not_pickle():
    blob = checkpoint.encode({"x": np.arange(3, dtype=np.float64), "s": np.float32(2)})
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + n])
    assert header["x"]["dtype"] == "F64" and header["x"]["shape"] == [3]
    meta = header["__metadata__"]
    assert meta["format"] == "graphc" and len(meta["sha256"]) == 64
    assert b"pickle" not in blob
    back = checkpoint.decode(blob)
    np.testing.assert_array_equal(back["x"], [0, 1, 2])
    assert back["s"].shape == () and back["s"].dtype == np.float32


def _v1_bytes(arrays):
    """A checkpoint in graphc's first format (magic, JSON entries, payload, SHA-256)."""
    entries, chunks, offset = [], [], 0
    for name, a in arrays.items():
        data = np.asarray(a).astype(np.asarray(a).dtype.newbyteorder("<")).tobytes()
        entries.append(
            {
                "name": name,
                "dtype": np.asarray(a).dtype.name,
                "shape": list(np.shape(a)),
                "offset": offset,
                "nbytes": len(data),
            }
        )
        chunks.append(data)
        offset += len(data)
    header = json.dumps(entries).encode()
    body = checkpoint.MAGIC + len(header).to_bytes(8, "little") + header + b"".join(chunks)
    return body + hashlib.sha256(body).digest()


def test_checkpoints_of_the_first_format_still_restore(tmp_path):
    w, b = _model()
    path = tmp_path / "old.ckpt"
    path.write_bytes(
        _v1_bytes({"w": np.full((2, 3), 7, np.float32), "b": np.array([5, 6], np.int64)})
    )
    with gc.Session() as sess:
        gc.train.Saver().restore(sess, str(path))
        np.testing.assert_array_equal(sess.run(w), np.full((2, 3), 7))
        np.testing.assert_array_equal(sess.run(b), [5, 6])
    blob = bytearray(path.read_bytes())
    blob[-40] ^= 1
    with pytest.raises(gc.CheckpointError, match="checksum"):
        checkpoint.decode(bytes(blob))


def test_restore_into_a_running_session_is_seen_by_compiled_plans(tmp_path):
    w, _ = _model()
    loss = gc.reduce_sum(gc.square(w))
    train = gc.train.GradientDescentOptimizer(0.1).minimize(loss, var_list=[w])
    saver = gc.train.Saver([w])
    path = str(tmp_path / "m")
    with gc.Session() as sess:
        sess.run(gc.global_variables_initializer())
        saved_loss = sess.run(loss)
        saver.save(sess, path)
        for _ in range(3):
            sess.run([train, loss])  # plans for both fetches now exist
        assert sess.run(loss) < saved_loss
        saver.restore(sess, path)
        assert sess.run(loss) == pytest.approx(saved_loss)
        _, reported = sess.run([train, loss])
        assert reported == pytest.approx(saved_loss)
        np.testing.assert_allclose(sess.run(w), 0.8 * np.arange(6).reshape(2, 3))


def test_a_saved_checkpoint_opens_with_safetensors(tmp_path):
    st = pytest.importorskip("safetensors.numpy")  # installed by the dev extra
    w, b = _model()
    path = str(tmp_path / "model.safetensors")
    with gc.Session() as sess:
        sess.run(gc.global_variables_initializer())
        gc.train.Saver().save(sess, path)
    loaded = st.load_file(path)
    assert set(loaded) == {"w", "b"}
    np.testing.assert_array_equal(loaded["w"], np.arange(6).reshape(2, 3))
    assert loaded["w"].dtype == np.float32 and loaded["b"].dtype == np.int64
    from safetensors import safe_open

    with safe_open(path, framework="numpy") as f:
        meta = f.metadata()
    assert meta["format"] == "graphc" and len(meta["sha256"]) == 64


def test_without_the_library_the_same_layout_is_written(monkeypatch):
    st = pytest.importorskip("safetensors.numpy")
    arrays = {
        "w": np.arange(6, dtype=np.float32).reshape(2, 3),
        "s": np.float64(2.5),
        "flags": np.array([True, False]),
        "k": np.arange(3, dtype=np.int8),
        "h": np.ones((2, 0), np.float16),
    }
    with_library = checkpoint.encode(arrays)
    monkeypatch.setitem(__import__("sys").modules, "safetensors.numpy", None)  # not installed
    by_hand = checkpoint.encode(arrays)
    for blob in (with_library, by_hand):
        for back in (st.load(blob), checkpoint.decode(blob)):
            assert set(back) == set(arrays)
            for k, a in arrays.items():
                np.testing.assert_array_equal(back[k], a)
                assert back[k].dtype == np.asarray(a).dtype and back[k].shape == np.shape(a)


def test_a_safetensors_file_from_another_tool_restores(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    w, b = _model()
    path = str(tmp_path / "other.safetensors")
    st.save_file({"w": np.full((2, 3), 3, np.float32), "b": np.array([1, 1], np.int64)}, path)
    with gc.Session() as sess:
        gc.train.Saver().restore(sess, path)
        np.testing.assert_array_equal(sess.run(w), np.full((2, 3), 3))


def _forged(header: bytes, payload=b"") -> bytes:
    return len(header).to_bytes(8, "little") + header + payload


@pytest.mark.parametrize(
    "blob",
    [
        _forged(b'{"w": {"dtype": "F32", "shape": [1e999], "data_offsets": [0, 4]}}', b"\0" * 4),
        _forged(
            b'{"w": {"dtype": "F32", "shape": [4611686018427387904, 4], "data_offsets": [0, 4]}}',
            b"\0" * 4,
        ),
        _forged(b'{"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}', b"\0" * 4),
        _forged(b'{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 99999999999]}}'),
        _forged(b'{"w": {"dtype": "O", "shape": [1], "data_offsets": [0, 8]}}', b"\0" * 8),
        _forged(b"[" * 100_000 + b"]" * 100_000),
        _forged(b'{"w": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"),
        (10**15).to_bytes(8, "little") + b"{}",
        _forged(
            b'{"__metadata__": {"format": "graphc", "sha256": "00"}, '
            b'"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}',
            b"\0" * 4,
        ),
        checkpoint.MAGIC + (10**12).to_bytes(8, "little") + b"x" * 40,
    ],
    ids=[
        "inf-dim",
        "huge-shape",
        "negative-dim",
        "offsets-outside",
        "object-dtype",
        "deep-json",
        "deep-entry",
        "huge-header-length",
        "bad-checksum",
        "v1-huge-header",
    ],
)
def test_forged_headers_are_checkpoint_errors(blob, tmp_path):
    with pytest.raises(gc.CheckpointError):
        checkpoint.decode(blob)
    path = tmp_path / "forged"
    path.write_bytes(blob)
    w, b = _model()
    with gc.Session() as sess, pytest.raises(gc.CheckpointError):
        gc.train.Saver().restore(sess, str(path))


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_restore_refuses_devices_and_fifos_without_reading(tmp_path):
    _model()
    saver = gc.train.Saver()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with gc.Session() as sess:
        for path in ("/dev/zero", str(fifo), str(tmp_path)):
            with pytest.raises(gc.CheckpointError, match="not a regular file|Is a directory"):
                saver.restore(sess, path)


def test_max_to_keep_holds_across_savers(tmp_path):
    _model()
    prefix = str(tmp_path / "ckpt")
    with gc.Session() as sess:
        sess.run(gc.global_variables_initializer())
        for start in (0, 10, 20):  # three "runs" of a training script
            saver = gc.train.Saver(max_to_keep=2)
            for s in range(start, start + 3):
                saver.save(sess, prefix, global_step=s)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint", "ckpt-21", "ckpt-22"]
    assert gc.train.latest_checkpoint(str(tmp_path)) == prefix + "-22"


def test_a_new_saver_leaves_checkpoints_of_another_save_path_alone(tmp_path):
    _model()
    with gc.Session() as sess:
        sess.run(gc.global_variables_initializer())
        for s in range(3):
            gc.train.Saver(max_to_keep=5).save(sess, str(tmp_path / "other"), global_step=s)
        saver = gc.train.Saver(max_to_keep=1)
        for s in range(3):
            saver.save(sess, str(tmp_path / "model"), global_step=s)
    assert sorted(os.listdir(tmp_path)) == [
        "checkpoint",
        "model-2",
        "other-0",
        "other-1",
        "other-2",
    ]
