"""The SLA monitor's HTTP bodies (none yet)."""
