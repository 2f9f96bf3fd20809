"""Code the tracker packages share: :mod:`.emulator` (faults, stats, webhook queue, lifecycle and
the foreground loop of every emulator) and :mod:`.rest` (the REST client base of every adapter)."""
