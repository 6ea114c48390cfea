"""Root exception of the consumers package."""

from __future__ import annotations

from core.errors import AllianceError


class ConsumerError(AllianceError):
    """Anything the read model (migrations, projector, queries) cannot do."""


class MigrationError(ConsumerError):
    """A migration file is malformed, was changed after being applied, or failed to apply."""


class ProjectionError(ConsumerError):
    """A batch could not be written to the read model and retrying will not help."""


class QueryError(ConsumerError):
    """An unknown query name or a bad query parameter."""
