"""``python -m benchmarks --workload conv-ops`` times each convolution and pooling kernel
(reference, compiled, and the peers where importable) and prints one row per kernel."""

from __future__ import annotations

from benchmarks import conv_ops
from benchmarks.workloads import WORKLOADS


def test_the_kernel_table_has_a_row_per_kernel(monkeypatch, capsys):
    assert WORKLOADS["conv-ops"]()["graphc"] is conv_ops.report
    monkeypatch.setattr(conv_ops, "CONVS", [("tiny", (2, 6, 6, 16), (3, 3, 16, 16))])
    monkeypatch.setattr(conv_ops, "POOLS", [("tiny pool", (2, 4, 4, 3))])
    conv_ops.report()
    rows = [line.split() for line in capsys.readouterr().out.splitlines() if "tiny" in line]
    assert [r[2] if r[1] == "pool" else r[1] for r in rows] == [
        "forward",
        "input",
        "filter",
        "forward",
        "gradient",
    ]
    assert all(float(cell) >= 0 for r in rows for cell in r[-2:])
