"""The sync pipeline, one stage a module.

``read`` (sheet -> validated rows) -> ``plan`` (against what the table holds:
new, changed, unchanged, removed, invalid; nothing written) -> ``write``
(batched upserts, removals) -> ``run`` (one run's ``sync_state`` lifecycle
around the other three). ``progress`` is how every stage reports progress.
"""
