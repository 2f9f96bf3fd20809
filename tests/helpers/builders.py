"""Builders of test data: a model with realistic defaults that each test overrides field by field."""

from __future__ import annotations

import copy
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)


class Builder(Generic[M]):
    """``build(**overrides)`` makes a ``model`` of ``defaults`` with ``overrides`` laid over them.

    The defaults are deep-copied for every call, so no two built objects share a list or a nested
    model (a test may change what it was given)."""

    def __init__(self, model: type[M], **defaults: Any) -> None:
        self.model = model
        self.defaults = defaults

    def __call__(self, **overrides: Any) -> M:
        return self.model(**{**copy.deepcopy(self.defaults), **overrides})
