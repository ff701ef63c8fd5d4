"""The SLA monitor's hTTP bodies (none yet)."""
