"""The SLA monitor's commands (none yet)."""
