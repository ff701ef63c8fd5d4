"""The SLA monitor's HTTP routes (none yet: the public app mounts nothing of the SLA monitor's)."""
