"""All tables. Each domain keeps its models in its own module; importing this package registers them all."""

from geminivideo.db.models.core import Ad, AdDailyMetric, AdSamplerState, Tenant, VideoJob
from geminivideo.db.models.decisions import *  # noqa: F403
from geminivideo.db.models.security import *  # noqa: F403
from geminivideo.db.models.webhooks import *  # noqa: F403
from geminivideo.db.models.winners import *  # noqa: F403

__all__ = ["Ad", "AdDailyMetric", "AdSamplerState", "Tenant", "VideoJob"]
