"""The model stage: the model file (its `schema`, `config` builders, `validation` and
`io`), the integrators (`integrate`), the NumPy building blocks (`layers`), the NumPy
models — the paper's generative latent ODE (`latent_ode`) and the controlled ensemble
(`controlled`) — and `load_model` (`load`). Nothing here imports Keras or torch."""

from keras_lode.model.config import controlled_config, default_config
from keras_lode.model.controlled import ControlledODE, random_controlled
from keras_lode.model.defaults import PLANNER_DEFAULTS
from keras_lode.model.io import read_model_file, save_model
from keras_lode.model.latent_ode import DECODE_METHODS, LatentODE, random_model
from keras_lode.model.load import load_model
from keras_lode.model.schema import FORMAT, FORMAT_VERSION, KINDS, weight_shapes
from keras_lode.model.validation import validate

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
