"""The Python API in a few lines: tune a synthetic LLM-pretraining landscape, read the front, and
propose hyperparameters for a model 33x larger than any trial.

    python examples/quickstart.py        # ~1-3 minutes on 2 CPU cores
"""

import numpy as np

from carbs_like import Tuner
from carbs_like.testing import LLMLandscape

landscape = LLMLandscape()  # Chinchilla loss, Step Law lr/batch optima, AdamW timescale, divergence
tuner = Tuner(landscape.space(), seed=0)  # n_params <= 3e7 and tokens <= 3e9 are the scaling axes
rng = np.random.default_rng(0)
for _ in range(60):
    trial = tuner.ask()
    loss, cost, failed = landscape.evaluate(trial.config, rng=rng)  # your training run goes here
    tuner.tell(trial, loss=loss, cost=cost, failed=failed)

print(tuner.pareto_front()[["n_params", "tokens", "lr", "loss", "cost"]].to_string(index=False))
law = tuner.scaling_law()
prediction = law.predict(n_params=1e9, tokens=2e10)
print("proposal:", prediction.config)
print(f"predicted loss {prediction.loss:.3f} in [{prediction.loss_interval[0]:.3f}, {prediction.loss_interval[1]:.3f}];"
      f" true optimum {float(landscape.optimal_loss(1e9, 2e10)):.3f}")
