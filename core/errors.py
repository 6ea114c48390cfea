"""The root exception of the backbone's runtime packages (the contract's is ``events.errors.EventError``)."""

from __future__ import annotations


class AllianceError(RuntimeError):
    """Something the backbone cannot do; each package derives its own root from it."""


class TopicError(AllianceError):
    """Topics are missing or differ from the registry, or the broker refused to create them."""
