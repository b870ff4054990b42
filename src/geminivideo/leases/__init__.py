"""Task leases and fencing (DESIGN.md §9 "Leases and fencing").

- ``renewal``: the worker's main process renews every Redis delivery it holds (running or waiting for its
  ETA) in kombu's unacknowledged index, one round trip per ``LEASE_RENEW_S`` whatever it holds, so a
  delivery is restored ``LEASE_TIMEOUT_S`` after its worker died instead of after the task's longest run.
- ``fencing``: each attempt of a task takes a token (``INCR lease_token:<task id>``) in the pool process
  that runs it; progress, result and output commits go through only while that token is the current one,
  and an attempt that cannot confirm it for ``LEASE_TIMEOUT_S`` stops its FFmpeg and publishes nothing.
- ``rabbitmq``: the per-consumer acknowledgement timeout that keeps long tasks alive on RabbitMQ.
"""
