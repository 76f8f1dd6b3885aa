"""The listing-sync benchmark: `make bench` (see /work/notes/README-performance.md)."""
