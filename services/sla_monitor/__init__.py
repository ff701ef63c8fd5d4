"""SLA monitor: time to first response, warnings, breaches and escalation."""
