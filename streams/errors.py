"""Root exception of the streams package."""


class StreamsError(RuntimeError):
    """A stream processor could not be built or run."""
