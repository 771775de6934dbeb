"""numpy + pandas + scikit-learn: a model trained at import, as a data-science app is written.

At import the app builds REAL_APP_MB (default 16) MiB of float64 features in a pandas DataFrame,
trains a scikit-learn pipeline (StandardScaler + LinearRegression) on them and keeps both: what
--preload exists to share. The target is an exact linear function of the features, so the fitted
model predicts y = 3·a − 2·b + 0.5·c + 7 (to rounding) and a caller can check any prediction
without scikit-learn. The benchmark (tests/bench/preload_ml.py) sets REAL_APP_MB to 128.

GET /               which process answered, and how big its data is
GET /predict?a=&b=&c=   the model's prediction for one row
GET /segments       a pandas groupby over the training data (rows per segment)
GET /gc             a full gc.collect() in this worker (the benchmark's PSS figure)
"""

import gc
import os

import numpy as np
import pandas as pd
from fastapi import FastAPI
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

FEATURES = ["a", "b", "c", "d"]
COLUMNS = len(FEATURES) + 2  # the features, the target and the segment
ROWS = max(1000, int(os.environ.get("REAL_APP_MB", "16")) * 1024 * 1024 // (COLUMNS * 8))

rng = np.random.default_rng(18)
data = pd.DataFrame(rng.standard_normal((ROWS, len(FEATURES))), columns=FEATURES)
data["y"] = 3 * data["a"] - 2 * data["b"] + 0.5 * data["c"] + 7  # d is noise the model must ignore
data["segment"] = (data["a"] > 0).astype(np.float64) + (data["b"] > 0).astype(np.float64)
model = make_pipeline(StandardScaler(), LinearRegression()).fit(data[FEATURES], data["y"])
segments = data.groupby("segment").size()

app = FastAPI()


@app.get("/")
async def who_answered() -> dict:
    return {"pid": os.getpid(), "rows": ROWS, "mib": round(data.memory_usage().sum() / 1048576, 1)}


@app.get("/predict")
async def predict(a: float, b: float, c: float, d: float = 0.0) -> dict:
    row = pd.DataFrame([[a, b, c, d]], columns=FEATURES)
    return {"pid": os.getpid(), "prediction": float(model.predict(row)[0])}


@app.get("/segments")
async def rows_per_segment() -> dict:
    return {"pid": os.getpid(), "rows": {str(int(k)): int(v) for k, v in segments.items()}}


@app.get("/gc")
async def collect() -> dict:
    return {"pid": os.getpid(), "collected": gc.collect()}
