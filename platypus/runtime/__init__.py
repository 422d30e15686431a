"""Runtimes: where events are read from and outcomes written to (embedded, Kafka)."""
