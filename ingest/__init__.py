"""Ingestion: Random User API (or the bundled offline generator) to Kafka."""
