"""PostgreSQL read model of the alliance: migrations, the effectively-once projector, portal queries."""

from consumers.errors import ConsumerError

__all__ = ["ConsumerError"]
