"""Models selectable by name in the config's `models:` list."""

from epiflow.models.base import PairData, available_models, make_model

__all__ = ["PairData", "available_models", "make_model"]
