"""GeminiVideo Workers: Celery workers for the GeminiVideo ad-video platform."""
__version__ = "0.1.0"
