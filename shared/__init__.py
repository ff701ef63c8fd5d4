"""Leadflow's common package: settings, database, events, outbox and Kafka helpers."""
