"""Prometheus metrics of one node, on its own ``CollectorRegistry`` (never the global one, so
several nodes can live in one process, as in tests).

Counters are bumped where things happen; queue depths and link states are read at scrape time from
a callback, so they are never stale.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Why a peer frame or link opening was refused (the `reason` label of tandem_peer_rejected_total).
REJECT_REASONS = (
    "garbage",  # not a Tandem frame at all
    "oversized",  # larger than peer.max_message_bytes
    "unknown_connection",  # names a connection this node does not have
    "bad_signature",  # link opening whose signature does not verify
    "authentication",  # envelope failed decryption/authentication (tampered, wrong keys)
    "wrong_recipient",  # envelope for another node or connection
    "replayed",  # a sequence number already delivered (replay or resend)
    "invalid_message",  # decrypted fine but not a valid message
    "session",  # sequence rules broken (window exceeded, ack for unsent)
    "refused",  # connection not accepting links (deactivated, deleted, code already used, ...)
)


@dataclass(frozen=True)
class ConnectionGauge:
    name: str
    outbox_unacked: int
    inbox_unprocessed: int
    link_up: bool
    state: str


class _StateCollector(Collector):
    def __init__(self, source: Callable[[], Iterable[ConnectionGauge]]) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        outbox = GaugeMetricFamily(
            "tandem_outbox_unacked", "Messages sent but not yet acked by the peer", labels=["connection"]
        )
        inbox = GaugeMetricFamily(
            "tandem_inbox_unprocessed", "Delivered messages not yet processed", labels=["connection"]
        )
        link = GaugeMetricFamily("tandem_link_up", "1 while the peer link is up", labels=["connection"])
        state = GaugeMetricFamily(
            "tandem_connection_state", "1 for the connection's current state", labels=["connection", "state"]
        )
        for g in self._source():
            outbox.add_metric([g.name], g.outbox_unacked)
            inbox.add_metric([g.name], g.inbox_unprocessed)
            link.add_metric([g.name], 1 if g.link_up else 0)
            state.add_metric([g.name, g.state], 1)
        yield from (outbox, inbox, link, state)


class NodeMetrics:
    def __init__(self, source: Callable[[], Iterable[ConnectionGauge]]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.messages_sent = Counter(
            "tandem_messages_sent", "Sequenced messages queued to peers", ["connection"], registry=r
        )
        self.messages_received = Counter(
            "tandem_messages_received", "Sequenced messages delivered from peers", ["connection"], registry=r
        )
        self.rejected = Counter(
            "tandem_peer_rejected", "Peer frames or link openings refused, by reason", ["reason"], registry=r
        )
        self.reconnects = Counter(
            "tandem_reconnects", "Outbound link attempts after a failure or drop", ["connection"], registry=r
        )
        self.link_changes = Counter(
            "tandem_link_changes", "Peer links going up or down", ["connection", "change"], registry=r
        )
        for reason in REJECT_REASONS:
            self.rejected.labels(reason)
        r.register(_StateCollector(source))

    def reject(self, reason: str) -> None:
        self.rejected.labels(reason).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
