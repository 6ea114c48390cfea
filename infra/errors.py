"""Root exception of the infra package (local services, the main job, ops tools)."""

from __future__ import annotations

from core.errors import AllianceError


class InfraError(AllianceError):
    """A local service could not be fetched, started, stopped or provisioned."""
