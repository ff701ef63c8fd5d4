"""Leadflow benchmarks (not tests): ``make bench`` runs every suite and prints its tables.

Layout: ``loadgen`` is the HTTP load generator (its own processes), ``servers`` starts the systems
under test in their own processes, ``suite`` holds the types a suite reports with, and each other
module (``intake`` …) is one suite, registered in ``__main__``.
"""
