"""Intake: the HTTP door through which inquiries arrive, stored before they are answered.

By what it receives: ``forms`` (web forms and form backends), ``platforms`` (Google Ads and Meta
lead ads), ``engagement`` (activities and CRM outcomes), ``privacy`` (erasure, quarantine) and
``keys`` (the keys that may post). Common to them: the submission's shape (``schemas``) and its
normalisation (``normalize``, pure), storing an arrival (``store``, ``writer``: group commit),
Idempotency-Keys (``idempotency``, ``pruning``), the tables (``models``), the routes' mounting
(``api``), the ``leadflow keys`` commands (``cli``) and the process's background work (``main``).
"""
