"""``python -m listing_sync`` works like the ``listing-sync`` command."""

from .cli import main

main()
