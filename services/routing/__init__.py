"""Routing: every qualified lead gets an owner (or waits in a queue), fairly, with the reason kept.

Pure decisions in ``router``, ``ledger``, ``accounts``, ``rules`` and ``facts`` (reps' working
hours are ``shared.business_hours``); ``assign`` decides in the caller's transaction and
``record`` writes what a decision leaves behind; the directory and its changes in ``store``;
HTTP in ``api``; the command line in ``cli``; the rules' versions are co-signed (``versions``,
on shared/cosign).
"""
