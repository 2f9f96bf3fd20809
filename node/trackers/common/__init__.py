"""Code the tracker packages share: :mod:`.emulator` (faults, stats, webhook queue, lifecycle and
the foreground loop of every emulator), :mod:`.rest` (the REST client base of every adapter) and
:mod:`.signing` (``sha256=<hex>`` webhook signatures)."""
