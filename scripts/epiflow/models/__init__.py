"""Models selectable by name in the config's `models:` list."""

from epiflow.models.base import (
    PairData,
    available_models,
    describe_models,
    make_model,
    model_params,
    unknown_params,
)

__all__ = ["PairData", "available_models", "describe_models", "make_model", "model_params", "unknown_params"]
