"""Helpers every package above the contract may import: the settings object, the root exception, the
Prometheus/HTTP helpers and the Kafka topic administration (create/verify from the registry).

Layering (docs/architecture.md): ``events`` (the contract) < ``core`` < ``events.tools``,
``events.simulator``, ``streams``, ``consumers`` < ``infra``, ``bench``. Nothing here imports a package above.
"""
