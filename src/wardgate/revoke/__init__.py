"""Revocations pushed from the issuer to every gateway worker (issue 15, item 1).

    events.py   a revocation as it travels: a token (jti), a subject or a client "issued
                before T"; validated on construction, one wire format for every transport
    revset.py   the gateway's in-memory set: O(1) check per request, entries that expire with
                the tokens they cover, a cursor (sans-I/O, clock passed in)
    health.py   the feed's freshness: the staleness bound, one log line per transition
    poll.py     adapter: GET <issuer>/revocations?since=<cursor> (no Redis)
    stream.py   adapter: a blocking read of the Redis stream the issuer relays to
    relay.py    the issuer's side of Redis: its event table appended to the stream
    feed.py     one worker's feed: picks the adapter, applies batches, drops cache entries

Nothing here runs on the request path except `RevocationSet.check`, a closure over three
dicts.
"""

from __future__ import annotations

from wardgate.revoke.events import KINDS, BadEvent, Revocation
from wardgate.revoke.revset import RevocationSet

__all__ = ["KINDS", "BadEvent", "Revocation", "RevocationSet"]
