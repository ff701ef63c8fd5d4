"""The SLA monitor's tables (none yet: no SLA clock is stored)."""
