"""Everything about the job table: schema models, state machine, the SQL, settings and the database.

No HTTP and no torch live here; both the web app and the worker build on this package.
"""
