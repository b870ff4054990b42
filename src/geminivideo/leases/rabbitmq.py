"""RabbitMQ's delivery acknowledgement timeout, set so a long task never trips it.

RabbitMQ closes a consumer's channel (PRECONDITION_FAILED) when one of its deliveries stays unacknowledged
longer than ``consumer_timeout`` (30 minutes by default). With late acks, a render longer than that — or a
retry held for its countdown — loses its channel and runs again elsewhere. RabbitMQ needs no renewal (a dead
consumer's deliveries come back as soon as its connection drops); the timeout only has to outlast the task.

- RabbitMQ 3.12 and later (and 3.11.15+) take a per-consumer timeout, the ``x-consumer-timeout`` argument of
  ``basic.consume``: each queue's consumers get its longest hard time limit + the longest retry countdown +
  ``VISIBILITY_MARGIN_S``. A consumer argument, unlike a queue argument, needs no queue re-declaration, so
  existing queues keep working.
- RabbitMQ 3.10 and 3.11 before .15 ignore it, as a consumer and as a queue argument (measured on 3.10.8:
  the channel closed at the server's 20 s with either set to 10 minutes); there the server setting
  ``consumer_timeout`` must be raised: ``deploy/rabbitmq/rabbitmq.conf`` (compose), or at runtime
  ``python -m geminivideo.leases.rabbitmq --apply`` (``rabbitmqctl eval 'application:set_env(rabbit,
  consumer_timeout, N).'``, not persisted). ``server_timeout_ms`` gives the value that covers every queue of
  both apps.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence

from geminivideo.config import Settings, get_settings
from geminivideo.leases.consumer_timeout import server_timeout_ms
from geminivideo.ml.celery_app import SPEC as ML_SPEC
from geminivideo.video.celery_app import SPEC as VIDEO_SPEC


def required_server_timeout_ms(settings: Settings) -> int:
    """``server_timeout_ms`` for both apps' shipped limits under ``settings``."""
    return server_timeout_ms(settings, [ML_SPEC.time_limits(settings), VIDEO_SPEC.time_limits(settings)])


def apply_server_timeout(timeout_ms: int | None, *, rabbitmqctl: str = "rabbitmqctl") -> None:
    """Set the running broker's ``consumer_timeout`` (None: unset, the built-in default); RabbitMQ 3.10/3.11 need
    it. Not persisted: put it in rabbitmq.conf too. Run on the broker's host (or with RABBITMQ_NODENAME)."""
    expression = ("application:unset_env(rabbit, consumer_timeout)." if timeout_ms is None
                  else f"application:set_env(rabbit, consumer_timeout, {int(timeout_ms)}).")
    done = subprocess.run([rabbitmqctl, "-q", "eval", expression], capture_output=True, text=True, timeout=60,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"rabbitmqctl eval {expression!r} failed ({done.returncode}): {done.stderr.strip()}")


def server_timeout(rabbitmqctl: str = "rabbitmqctl") -> int | None:
    """The running broker's ``consumer_timeout`` in ms (None: disabled or not set)."""
    done = subprocess.run([rabbitmqctl, "-q", "eval", "application:get_env(rabbit, consumer_timeout)."],
                          capture_output=True, text=True, timeout=60, check=True)
    text = done.stdout.strip()  # "{ok,1800000}" or "undefined"
    digits = "".join(ch for ch in text if ch.isdigit())
    return int(digits) if text.startswith("{ok,") and digits else None


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m geminivideo.leases.rabbitmq [--apply]``: print (or apply) the consumer_timeout these settings
    need, as a rabbitmq.conf line."""
    parser = argparse.ArgumentParser(prog="python -m geminivideo.leases.rabbitmq", description=main.__doc__)
    parser.add_argument("--apply", action="store_true",
                        help="raise the running broker's consumer_timeout with rabbitmqctl (if lower)")
    args = parser.parse_args(argv)
    needed = required_server_timeout_ms(get_settings())
    print(f"consumer_timeout = {needed}")
    if args.apply:
        current = server_timeout()
        if current is not None and current < needed:
            apply_server_timeout(needed)
            print(f"# raised from {current} ms", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
