#!/usr/bin/env python3
"""Fits the erf polynomials of Sources/CKernels/rowwise_avx2.c (mpq_erf_f32's fast path).

erf(x) = x + x * P(x^2) for |x| <= 0.921875 (P degree 5), and erf(t) = 1 - exp(Q(t)) for
0.921875 < t < 3.925 (Q degree 8; erfc(3.925) < 2^-27, so erf rounds to 1 beyond).
Least squares in double on Chebyshev-spaced points, rounded to float; prints the worst
error in ulp of float erf over [0, 5] (evaluated in float, exact exp) and the constants.
Needs numpy.   python tools/fit_erf.py
"""
import numpy as np
from math import erf, erfc
import math
# small: erf(x) = x + x * P(x^2), P degree 5 in s=x^2 (6 coeffs), |x| <= 0.921875
B = 0.921875
xs = np.cos(np.linspace(0, np.pi, 4000)) * B
xs = xs[np.abs(xs) > 1e-6]
s = xs**2
target = np.array([erf(v)/v - 1 for v in xs])
deg = 5
A = np.vander(s, deg+1)
# weight: relative error in erf ~ error in P * x / erf(x) ~ error in P
c, *_ = np.linalg.lstsq(A, target, rcond=None)
c32 = c.astype(np.float32)
def small(x):
    x = np.float32(x); s = np.float32(x*x)
    r = c32[0]
    for k in c32[1:]: r = np.float32(np.float32(r*s) + k)
    return np.float32(np.float32(r*x) + x)
# big: erf(t) = 1 - exp(Q(t)), Q degree d in t, t in [B, 3.925]
U = 3.925
ts = (np.cos(np.linspace(0, np.pi, 4000)) + 1) / 2 * (U - B) + B
tq = np.array([math.log(erfc(v)) for v in ts])
d = 8
A2 = np.vander(ts, d+1)
q, *_ = np.linalg.lstsq(A2, tq, rcond=None)
q32 = q.astype(np.float32)
def big(t):
    t = np.float32(t); r = q32[0]
    for k in q32[1:]: r = np.float32(np.float32(r*t) + k)
    return np.float32(1) - np.float32(math.exp(float(r)))
worst = 0
for v in np.linspace(0, 5, 200001):
    v32 = np.float32(v)
    ref = erf(float(v32))
    got = small(v32) if v32 <= B else (big(v32) if v32 < U else np.float32(1))
    ulp = float(np.spacing(np.float32(ref)))
    worst = max(worst, abs(float(got) - ref) / ulp)
print("worst ulp", worst)
print("small", [float(x) for x in c32])
print("big", [float(x) for x in q32])
for x in c32: print("%.9ef" % x)
print()
for x in q32: print("%.9ef" % x)
