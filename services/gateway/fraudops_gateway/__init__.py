"""The FastAPI gateway: the synchronous /predict authorisation path."""
