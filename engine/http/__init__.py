"""The HTTP API: the FastAPI app (health, metrics, guides, unsubscribe, ingestion routes) and
the uvicorn server that runs it."""
