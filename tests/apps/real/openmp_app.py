"""OpenMP (libgomp) used at import: scikit-learn's HistGradientBoostingClassifier fits with an
OpenMP parallel region, so libgomp's thread pool exists before any worker does. libgomp has no
fork handler: a forked child that enters a parallel region waits for threads that are not there.
arbiter --preload must refuse this app naming OpenMP and OMP_NUM_THREADS; exec mode serves it.

GET /                  which process answered
GET /predict?x=&y=     the class the model predicts: 1 when x + y > 0 (learnt from the data)
"""

import os

import numpy as np
from fastapi import FastAPI
from sklearn.ensemble import HistGradientBoostingClassifier

rng = np.random.default_rng(18)
features = rng.standard_normal((2000, 2))
labels = (features[:, 0] + features[:, 1] > 0).astype(int)
model = HistGradientBoostingClassifier(max_iter=10, random_state=18).fit(features, labels)

app = FastAPI()


@app.get("/")
async def who_answered() -> dict:
    return {"pid": os.getpid()}


@app.get("/predict")
async def predict(x: float, y: float) -> dict:
    return {"pid": os.getpid(), "class": int(model.predict(np.array([[x, y]]))[0])}
