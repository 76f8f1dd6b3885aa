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
from listing_sync.resilience.ratelimit import (
    Limiter,
    SlidingWindow,
    TokenBucket,
    postgrest_bucket,
    sheets_limit,
)

__all__ = [
    "BreakerState",
    "BreakerStore",
    "CircuitBreaker",
    "FileStore",
    "Guard",
    "Limiter",
    "MemoryStore",
    "RetryPolicy",
    "RunLock",
    "SlidingWindow",
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
    "sheets_limit",
]
