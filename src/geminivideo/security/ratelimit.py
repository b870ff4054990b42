"""Token buckets in Redis, shared by every API process: one bucket per key and per kind of request.

A bucket holds up to ``burst`` tokens and refills at ``per_minute / 60`` tokens a second; a request takes
one. The check is one Lua script (read, refill, take, write) on Redis's own clock, so concurrent API
processes never race or disagree on time. A refused request learns when the next token arrives
(``Retry-After``). The bucket key expires once it would be full again, so idle keys cost nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import redis

_TOKEN_BUCKET = """
local key = KEYS[1]
local burst = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local state = redis.call('HMGET', key, 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local allowed = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', key, 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', key, math.ceil((burst - tokens) / rate * 1000) + 1000)
return {allowed, tostring(wait)}
"""


@dataclass(frozen=True)
class Limit:
    """``per_minute`` sustained, ``burst`` at once."""

    per_minute: float
    burst: int


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_s: int  # whole seconds, rounded up, as Retry-After wants; 0 when allowed


def take(client: redis.Redis, bucket: str, limit: Limit) -> Decision:
    """Take one token from ``ratelimit:<bucket>``; say whether there was one and, if not, when there will be."""
    script = client.register_script(_TOKEN_BUCKET)
    allowed, wait = script(keys=[f"ratelimit:{bucket}"], args=[limit.burst, limit.per_minute / 60.0])
    if int(allowed):
        return Decision(True, 0)
    return Decision(False, max(1, math.ceil(float(wait))))
