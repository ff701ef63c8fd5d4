"""Scoring: applies the qualification rules to each lead and emits what changed."""
