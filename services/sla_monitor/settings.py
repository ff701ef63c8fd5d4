"""The SLA monitor's settings of its own (none yet: the process uses the common ones,
LEADFLOW_HTTP__SLA_MONITOR_PORT among them)."""
