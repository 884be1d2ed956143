#!/usr/bin/python3
"""compare_npy.py GOT.npy REF.npy ATOL NAME - max abs error of two float32
matrices; exits 1 if shapes differ or any |got - ref| > ATOL (or NaN)."""
import sys

import numpy as np

got, ref = np.load(sys.argv[1]), np.load(sys.argv[2])
atol, name = float(sys.argv[3]), sys.argv[4]
if got.shape != ref.shape:
    print("%s: shape %s, expected %s" % (name, got.shape, ref.shape))
    sys.exit(1)
err = np.abs(got.astype(np.float64) - ref.astype(np.float64))
mx = float(err.max()) if err.size else 0.0
ok = bool(np.all(err <= atol)) and not np.isnan(got).any()
print("%s: max abs err %.3g over %d values (atol %g) %s" % (name, mx, err.size, atol, "ok" if ok else "FAIL"))
sys.exit(0 if ok else 1)
