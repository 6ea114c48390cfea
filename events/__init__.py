"""The alliance event contract: envelope, event families, reference data and the topic registry."""
