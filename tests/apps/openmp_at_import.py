"""Runs one OpenMP parallel region at import, through the system's libgomp (what a scikit-learn or
LightGBM fit does): libgomp keeps its thread pool afterwards and has no fork handler, so --preload must
refuse it, naming OpenMP and OMP_NUM_THREADS. The region uses the default team size, so
OMP_NUM_THREADS decides the pool (OMP_NUM_THREADS=1: no pool, and the app can be forked)."""

import ctypes

from hello import app  # noqa: F401  (the same endpoints as hello)

libgomp = ctypes.CDLL("libgomp.so.1")
REGION = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(lambda data: None)
libgomp.GOMP_parallel.argtypes = [REGION.__class__, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
libgomp.GOMP_parallel(REGION, None, 0, 0)  # num_threads 0: the default, from OMP_NUM_THREADS
