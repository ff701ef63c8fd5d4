"""Intake: the HTTP door through which inquiries arrive."""
