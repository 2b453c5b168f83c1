"""Models: causal features, purged walk-forward training, the model registry, drift checks and retraining.

Modules: features (what a model sees), cv (leak-free splits), estimators (LightGBM, ridge), train,
metrics (MSE, IC, rank IC, hit rate), registry (models/<name>/<version>/), drift and retrain.
"""
