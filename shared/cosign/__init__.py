"""Co-signed, versioned configuration: what marketing and sales agree on together (qualification
rules, routing rules; SLA policies and goals next) goes live only when one approver of each side
has signed its exact content.

One component for every kind: ``checks`` (the pure rules of signing), ``models`` (one table of
versions and one of approvals, by kind), ``store`` (propose, approve, activate, diff, history),
``api`` (the HTTP routes) and ``cli`` (the commands), each parameterised by a ``Kind``
(``kind``): what is stored, how a text is validated, what its activation announces.
"""
