"""Stream processors (faust-streaming): ingest, shared employment tables, counters, aggregated topics."""
