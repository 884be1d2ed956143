#!/usr/bin/python3
"""compare_npy.py ATOL NAME GOT.npy REF.npy [NAME GOT REF ...] - max abs error of
float32 matrices; prints one line per pair and exits 1 if any shape differs or
any |got - ref| > ATOL (or NaN)."""
import sys

import numpy as np

atol, args, bad = float(sys.argv[1]), sys.argv[2:], 0
for i in range(0, len(args), 3):
    name, got, ref = args[i], np.load(args[i + 1]), np.load(args[i + 2])
    if got.shape != ref.shape:
        print("%s: shape %s, expected %s FAIL" % (name, got.shape, ref.shape))
        bad += 1
        continue
    err = np.abs(got.astype(np.float64) - ref.astype(np.float64))
    mx = float(err.max()) if err.size else 0.0
    ok = bool(np.all(err <= atol)) and not np.isnan(got).any()
    bad += not ok
    print("%s: max abs err %.3g over %d values (atol %g) %s" % (name, mx, err.size, atol, "ok" if ok else "FAIL"))
sys.exit(1 if bad else 0)
