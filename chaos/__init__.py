"""The fault suite: a private PostgreSQL to restart, a proxy to freeze, and scenarios that count losses.

Everything here runs on loopback only and cleans up what it started: ``python -m chaos.run``.
"""
