"""gc.data: batch iteration and IDX (MNIST) files written by the tests themselves."""

import gzip

import numpy as np
import pytest

import graphc as gc
from graphc import data


def test_batches_in_order_with_a_short_last_batch():
    x = np.arange(10)
    y = np.arange(10) * 10
    got = list(gc.data.batches(x, y, batch_size=4))
    assert [len(bx) for bx, _ in got] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([bx for bx, _ in got]), x)
    np.testing.assert_array_equal(np.concatenate([by for _, by in got]), y)
    assert [len(b) for b in gc.data.batches(x, batch_size=4, drop_last=True)] == [4, 4]


def test_shuffle_is_seeded_keeps_pairs_and_changes_each_epoch():
    x = np.arange(12)
    runs = [
        list(gc.data.batches(x, x * 2, batch_size=5, shuffle=True, seed=7, epochs=2))
        for _ in range(2)
    ]
    for (a, b), (c, d) in zip(runs[0], runs[1], strict=True):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
        np.testing.assert_array_equal(b, a * 2)  # rows stay paired
    epoch1 = np.concatenate([a for a, _ in runs[0][:3]])
    epoch2 = np.concatenate([a for a, _ in runs[0][3:]])
    assert sorted(epoch1) == list(x) and sorted(epoch2) == list(x)
    assert not np.array_equal(epoch1, x) and not np.array_equal(epoch1, epoch2)
    other = np.concatenate(list(gc.data.batches(x, batch_size=5, shuffle=True, seed=8)))
    assert not np.array_equal(other, epoch1)


def test_epochs_and_infinite_iteration():
    x = np.arange(3)
    assert len(list(gc.data.batches(x, batch_size=2, epochs=3))) == 6
    assert list(gc.data.batches(x, batch_size=2, epochs=0)) == []
    it = gc.data.batches(x, batch_size=2, epochs=None)
    assert len([next(it) for _ in range(100)]) == 100
    assert data.num_batches(10, 4) == 3 and data.num_batches(10, 4, drop_last=True) == 2


def test_batches_rejects_bad_arguments():
    with pytest.raises(gc.ShapeError, match="different lengths"):
        gc.data.batches(np.zeros(3), np.zeros(4), batch_size=2)
    with pytest.raises(gc.GraphcError, match="batch_size"):
        gc.data.batches(np.zeros(3), batch_size=0)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip_and_load_mnist(tmp_path, suffix):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 5).astype(np.uint8)
    data.write_idx(str(tmp_path / f"t10k-images-idx3-ubyte{suffix}"), images)
    data.write_idx(str(tmp_path / f"t10k-labels-idx1-ubyte{suffix}"), labels)
    raw = open(tmp_path / f"t10k-images-idx3-ubyte{suffix}", "rb").read()
    if suffix:
        raw = gzip.decompress(raw)
    assert raw[:4] == b"\x00\x00\x08\x03" and raw[4:8] == (5).to_bytes(4, "big")
    x, y = gc.data.load_mnist(str(tmp_path), kind="test")
    np.testing.assert_array_equal(x, images)
    np.testing.assert_array_equal(y, labels)
    with pytest.raises(data.DataError, match="train-images"):
        gc.data.load_mnist(str(tmp_path), kind="train")


def test_idx_big_endian_floats(tmp_path):
    a = np.array([[1.5, -2.0], [3.25, 0.0]], dtype=np.float32)
    raw = b"\x00\x00\x0d\x02" + np.array([2, 2], ">u4").tobytes() + a.astype(">f4").tobytes()
    (tmp_path / "f.idx").write_bytes(raw)
    got = gc.data.read_idx(str(tmp_path / "f.idx"))
    np.testing.assert_array_equal(got, a)
    assert got.dtype == np.float32


@pytest.mark.parametrize(
    "raw,match",
    [
        (b"\x08\x03\x00\x00", "not an IDX"),
        (b"\x00\x00\x08\x02" + (3).to_bytes(4, "big"), "truncated"),
        (b"\x00\x00\x08\x01" + (3).to_bytes(4, "big") + b"\x01\x02", "promises"),
    ],
)
def test_bad_idx_files_raise(tmp_path, raw, match):
    (tmp_path / "bad").write_bytes(raw)
    with pytest.raises(data.DataError, match=match):
        gc.data.read_idx(str(tmp_path / "bad"))
