"""Task names, queue names, priorities and routing: the names of DESIGN.md §3 that every caller uses."""

from __future__ import annotations

from enum import StrEnum


# ─── Names ──────────────────────────────────────────────────────────────────────────────────────────
class TaskName(StrEnum):
    PROCESS_HUBSPOT_WEBHOOK = "process_hubspot_webhook"
    PROCESS_HUBSPOT_EVENTS = "process_hubspot_events"  # a stored batch (what the webhook endpoint sends)
    MONITOR_ALL_ADS_FATIGUE = "monitor_all_ads_fatigue"
    MONITOR_FATIGUE = "monitor_fatigue"  # alias of MONITOR_ALL_ADS_FATIGUE
    AUTO_INDEX_WINNERS = "auto_index_winners"
    AUTO_INDEX_WINNER = "auto_index_winner"
    EXECUTE_APPROVED_CHANGES = "execute_approved_changes"
    SWEEP_WEBHOOK_EVENTS = "sweep_webhook_events"
    SYNC_AD_METRICS = "sync_ad_metrics"  # hourly: ad-platform insights into ad_daily_metrics
    RENDER_VIDEO = "render_video_task"
    GENERATE_PREVIEW = "generate_preview_task"
    TRANSCODE = "transcode_task"
    TRANSCODE_SEGMENT = "transcode_segment_task"  # one part of a split-and-stitch transcode
    TRANSCODE_STITCH = "transcode_stitch_task"  # joins the parts and muxes the audio (takes the job's task id)
    TRANSCODE_SPLIT_FAILED = "transcode_split_failed_task"  # the chord's error callback
    CAPTION = "caption_task"
    CLEANUP = "cleanup_task"
    MONITOR_RESOURCES = "monitor_resources_task"
    VIDEO_PING = "video_ping"
    ML_PING = "ml_ping"


class QueueName(StrEnum):
    HUBSPOT_WEBHOOK_EVENTS = "hubspot-webhook-events"
    FATIGUE_MONITORING = "fatigue-monitoring"
    BUDGET_OPTIMIZATION = "budget-optimization"
    ML_DEFAULT = "ml-default"
    RENDER = "render_queue"
    TRANSCODE = "transcode_queue"
    CAPTION = "caption_queue"
    PREVIEW = "preview_queue"
    MAINTENANCE = "maintenance"


# Queue priorities of DESIGN.md §3 on the seed's scale: higher = more urgent.
QUEUE_PRIORITY: dict[QueueName, int] = {
    QueueName.RENDER: 10,
    QueueName.TRANSCODE: 7,
    QueueName.CAPTION: 6,
    QueueName.PREVIEW: 5,
    QueueName.MAINTENANCE: 5,
}
DEFAULT_PRIORITY = 5
MAX_PRIORITY = 10

# The order a worker consuming several queues drains them in (most urgent first). Maintenance comes
# first: its tasks take milliseconds and must not wait behind a one-hour render.
VIDEO_QUEUE_ORDER: tuple[QueueName, ...] = (
    QueueName.MAINTENANCE,
    QueueName.RENDER,
    QueueName.TRANSCODE,
    QueueName.CAPTION,
    QueueName.PREVIEW,
)
ML_QUEUE_ORDER: tuple[QueueName, ...] = (
    QueueName.HUBSPOT_WEBHOOK_EVENTS,
    QueueName.BUDGET_OPTIMIZATION,
    QueueName.FATIGUE_MONITORING,
    QueueName.ML_DEFAULT,
)

TASK_QUEUE: dict[TaskName, QueueName] = {
    TaskName.PROCESS_HUBSPOT_WEBHOOK: QueueName.HUBSPOT_WEBHOOK_EVENTS,
    TaskName.PROCESS_HUBSPOT_EVENTS: QueueName.HUBSPOT_WEBHOOK_EVENTS,
    TaskName.MONITOR_ALL_ADS_FATIGUE: QueueName.FATIGUE_MONITORING,
    TaskName.MONITOR_FATIGUE: QueueName.FATIGUE_MONITORING,
    TaskName.AUTO_INDEX_WINNERS: QueueName.BUDGET_OPTIMIZATION,
    TaskName.AUTO_INDEX_WINNER: QueueName.BUDGET_OPTIMIZATION,
    TaskName.EXECUTE_APPROVED_CHANGES: QueueName.BUDGET_OPTIMIZATION,
    TaskName.SWEEP_WEBHOOK_EVENTS: QueueName.HUBSPOT_WEBHOOK_EVENTS,
    TaskName.SYNC_AD_METRICS: QueueName.ML_DEFAULT,
    TaskName.RENDER_VIDEO: QueueName.RENDER,
    TaskName.GENERATE_PREVIEW: QueueName.PREVIEW,
    TaskName.TRANSCODE: QueueName.TRANSCODE,
    TaskName.TRANSCODE_SEGMENT: QueueName.TRANSCODE,
    TaskName.TRANSCODE_STITCH: QueueName.TRANSCODE,
    TaskName.TRANSCODE_SPLIT_FAILED: QueueName.TRANSCODE,
    TaskName.CAPTION: QueueName.CAPTION,
    TaskName.CLEANUP: QueueName.MAINTENANCE,
    TaskName.MONITOR_RESOURCES: QueueName.MAINTENANCE,
    TaskName.VIDEO_PING: QueueName.MAINTENANCE,
    TaskName.ML_PING: QueueName.ML_DEFAULT,
}

ML_TASKS: tuple[TaskName, ...] = (
    TaskName.PROCESS_HUBSPOT_WEBHOOK,
    TaskName.PROCESS_HUBSPOT_EVENTS,
    TaskName.MONITOR_ALL_ADS_FATIGUE,
    TaskName.MONITOR_FATIGUE,
    TaskName.AUTO_INDEX_WINNERS,
    TaskName.AUTO_INDEX_WINNER,
    TaskName.EXECUTE_APPROVED_CHANGES,
    TaskName.SWEEP_WEBHOOK_EVENTS,
    TaskName.SYNC_AD_METRICS,
    TaskName.ML_PING,
)
VIDEO_TASKS: tuple[TaskName, ...] = (
    TaskName.RENDER_VIDEO,
    TaskName.GENERATE_PREVIEW,
    TaskName.TRANSCODE,
    TaskName.TRANSCODE_SEGMENT,
    TaskName.TRANSCODE_STITCH,
    TaskName.TRANSCODE_SPLIT_FAILED,
    TaskName.CAPTION,
    TaskName.CLEANUP,
    TaskName.MONITOR_RESOURCES,
    TaskName.VIDEO_PING,
)
