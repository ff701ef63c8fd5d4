"""Leadflow's services side by side (intake, scoring, routing, webhooks, the SLA monitor), and the
composition root that puts them together: ``api`` (the public app), ``processes`` (each
process), ``tables``, ``dev`` and ``cli`` (docs/architecture.md)."""
