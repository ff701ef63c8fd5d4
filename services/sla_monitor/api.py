"""The SLA monitor's hTTP routes (none yet: the public app mounts nothing of the SLA monitor's)."""
