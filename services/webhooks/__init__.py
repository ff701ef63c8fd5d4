"""Webhooks to CRMs: subscriptions, signed deliveries with a persisted retry schedule, replay."""
