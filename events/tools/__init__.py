"""The universities' tools: the publisher SDK (``events.tools.publisher``), bulk import of JSONL/CSV files
(``events.tools.bulk``) and the command line ``python -m events.tools`` (publish, pseudonymise, schemas)."""
