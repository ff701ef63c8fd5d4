"""Engagement and CRM outcomes posted back: activities (page views, email opens and clicks,
webinars, demo requests, meetings booked…) and outcomes (responded, accepted, rejected with a
reason, opportunity, booked with an amount…): their wire models (``schemas``), routes (``api``)
and records (``store``)."""
