"""HTTP API (FastAPI, port 8003): ``uvicorn geminivideo.api:app``."""

from geminivideo.api.app import create_app

app = create_app()

__all__ = ["app", "create_app"]
