"""An allow list of networks (`allow_networks`), matched against addresses with a bounded
memo (no I/O): the gateway's detector and the issuer's login detector both skip the network
signals for what it holds."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from wardgate.config.common import parse_networks

_MEMO = 65_536  # addresses remembered; the memo starts over beyond


class AllowedNetworks:
    __slots__ = ("nets", "_memo")

    def __init__(self, cidrs: Iterable[str]) -> None:
        self.nets = parse_networks(list(cidrs))
        self._memo: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return bool(self.nets)

    def __contains__(self, address: str) -> bool:
        """`address` lies in one of the networks (an unparsable one never does)."""
        if not self.nets:
            return False
        hit = self._memo.get(address)
        if hit is None:
            try:
                ip = ipaddress.ip_address(address)
                hit = any(ip in n for n in self.nets)
            except ValueError:
                hit = False
            if len(self._memo) >= _MEMO:
                self._memo.clear()
            self._memo[address] = hit
        return hit
