"""The SLA monitor's event handlers (none yet: nothing consumes lead.routed for SLA clocks)."""
