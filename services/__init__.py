"""Leadflow's services: intake, scoring, SLA monitor, and the CLI that runs them."""
