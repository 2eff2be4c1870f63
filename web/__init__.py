"""The Starlette app: REST API, the old Flask service's routes, health, readiness and metrics.

``web.app.create_app(settings, store)`` builds it; ``pose-service web`` serves it with uvicorn.
"""
