"""Write the 17 points of the classic TF1 linear-regression tutorial as .npy feeds for
``graphc run examples/linear_regression.g`` (x scaled by 1/10, so plain gradient descent
with the file's lr=0.1 is stable).

    python examples/linreg_data.py OUT_DIR
"""

import os
import sys

import numpy as np

X = [
    3.3,
    4.4,
    5.5,
    6.71,
    6.93,
    4.168,
    9.779,
    6.182,
    7.59,
    2.167,
    7.042,
    10.791,
    5.313,
    7.997,
    5.654,
    9.27,
    3.1,
]
Y = [
    1.7,
    2.76,
    2.09,
    3.19,
    1.694,
    1.573,
    3.366,
    2.596,
    2.53,
    1.221,
    2.827,
    3.465,
    1.65,
    2.904,
    2.42,
    2.94,
    1.3,
]

if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "."
    os.makedirs(out, exist_ok=True)
    np.save(os.path.join(out, "x.npy"), np.array(X, np.float32)[:, None] / 10)
    np.save(os.path.join(out, "y.npy"), np.array(Y, np.float32)[:, None])
    print(f"wrote {out}/x.npy and {out}/y.npy (17 points)")
