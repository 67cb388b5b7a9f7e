"""vae-search: multi-objective hyperparameter search for convolutional VAEs."""

__version__ = "0.1.0"
