"""Root exception of the infra package."""


class InfraError(RuntimeError):
    """A local service could not be fetched, started, stopped or provisioned."""
