"""The model stage: the model file (`format`), the integrators (`integrate`), the NumPy
models — the paper's generative latent ODE (`latent_ode`) and the controlled ensemble
(`controlled`) — and `load_model` (`load`). Nothing here imports Keras or torch."""

from keras_lode.model.controlled import ControlledODE, random_controlled
from keras_lode.model.format import (
    FORMAT,
    FORMAT_VERSION,
    KINDS,
    PLANNER_DEFAULTS,
    controlled_config,
    default_config,
    read_model_file,
    save_model,
    validate,
    weight_shapes,
)
from keras_lode.model.latent_ode import DECODE_METHODS, LatentODE, random_model
from keras_lode.model.load import load_model

__all__ = [
    "ControlledODE",
    "DECODE_METHODS",
    "KINDS",
    "controlled_config",
    "random_controlled",
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
