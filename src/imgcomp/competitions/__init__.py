"""Competitions by name: the only place that knows a competition's raw layout and CSV format."""

from __future__ import annotations

from ..errors import UserError
from .base import Competition, SubmissionFormat
from .cat_dog import CatDog
from .food11 import Food11
from .digits import Digits
from .palm import Palm

REGISTRY: dict[str, type[Competition]] = {c.name: c for c in (Digits, CatDog, Food11, Palm)}


def get_competition(name: str) -> Competition:
    try:
        return REGISTRY[name]()
    except KeyError:
        raise UserError(f"unknown competition {name!r}; choose one of {sorted(REGISTRY)}") from None


__all__ = ["Competition", "SubmissionFormat", "get_competition", "REGISTRY"]
