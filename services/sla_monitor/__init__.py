"""The SLA monitor: co-signed SLA policies on business calendars, a durable clock per lead and
target (``sla_clocks``), escalation ladders fired by a sweep that replicas share, email
notifications, and the ops API and board (docs/sla.md).

Pure decisions in ``policy``, ``ladder``, ``facts``, ``tracking``, ``clocks``, ``attainment`` and
``messages`` (deadline arithmetic: shared/calendars.py); adapters around them: ``handlers`` (the
consumer), ``store`` (SQL), ``sweep`` (the timer), ``notifier`` and ``mailer`` (SMTP), ``api``,
``board`` (the ops pages), ``cli``.
"""
