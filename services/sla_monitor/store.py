"""The SLA monitor's queries (none yet)."""
