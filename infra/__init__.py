"""Local infrastructure (single-node Kafka in KRaft mode, PostgreSQL), settings and wiring."""
