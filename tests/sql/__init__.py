"""The named SQL statements of jobs/sql/*.sql, one test group (class) per statement, in the manner of
River's driver tests: to see what is known about ``claim_job``, read ``TestClaimJob``. Query-plan
tests read ``EXPLAIN (FORMAT JSON)`` through :mod:`tests.sql.plans` rather than matching plan text.
"""
