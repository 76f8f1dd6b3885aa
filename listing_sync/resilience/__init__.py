"""Hand-written resilience: retry with backoff, rate limits, circuit breaker, run lock."""

from listing_sync.resilience.backoff import (
    RetryPolicy,
    backoff_ceiling,
    full_jitter_delay,
    parse_retry_after,
    retry_with_backoff,
)
from listing_sync.resilience.breaker import (
    BreakerState,
    BreakerStore,
    CircuitBreaker,
    FileStore,
    MemoryStore,
    admit,
    clamp,
    on_failure,
    on_success,
)
from listing_sync.resilience.guard import Guard
from listing_sync.resilience.lock import RunLock
from listing_sync.resilience.ratelimit import TokenBucket, postgrest_bucket, sheets_bucket

__all__ = [
    "BreakerState",
    "BreakerStore",
    "CircuitBreaker",
    "FileStore",
    "Guard",
    "MemoryStore",
    "RetryPolicy",
    "RunLock",
    "TokenBucket",
    "admit",
    "backoff_ceiling",
    "clamp",
    "full_jitter_delay",
    "on_failure",
    "on_success",
    "parse_retry_after",
    "postgrest_bucket",
    "retry_with_backoff",
    "sheets_bucket",
]
