"""HTTP surfaces of a node: the admin API (loopback, token) and the peer listener (internet-facing)."""
