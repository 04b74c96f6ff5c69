"""The model stage: the model file (`format`), the integrators (`integrate`) and the NumPy
latent ODE (`latent_ode`). Nothing here imports Keras or torch."""

from keras_lode.model.format import (
    FORMAT,
    FORMAT_VERSION,
    PLANNER_DEFAULTS,
    default_config,
    read_model_file,
    save_model,
    validate,
    weight_shapes,
)
from keras_lode.model.latent_ode import DECODE_METHODS, LatentODE, load_model, random_model

__all__ = [
    "DECODE_METHODS",
    "FORMAT",
    "FORMAT_VERSION",
    "LatentODE",
    "PLANNER_DEFAULTS",
    "default_config",
    "load_model",
    "random_model",
    "read_model_file",
    "save_model",
    "validate",
    "weight_shapes",
]
