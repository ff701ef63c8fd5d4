"""The SLA monitor. Not built yet (issue 17): its process serves health and metrics only, and the
modules here are the skeleton every service has (api, schemas, models, store, handlers, cli,
settings, main), empty until it has clocks to keep."""
