"""Routing: every qualified lead gets an owner (or waits in a queue), fairly, with the reason kept.

Pure decisions in ``router``, ``ledger``, ``hours``, ``accounts`` and ``rules``; the database in
``repository`` and ``service``; HTTP in ``api``; the command line in ``cli``.
"""
