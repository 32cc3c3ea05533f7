"""pysync.sync: the offline-first sync client (see docs/sync-protocol.md)."""
