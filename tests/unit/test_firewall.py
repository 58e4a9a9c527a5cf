"""Removing an instance's chains while another process of it removes them too."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

import pytest

from port.deploy.backends.base import BackendError
from port.deploy.backends.firewall import Firewall


class Iptables:
    """A table of chains; ``racer`` deletes the named chain right after it is listed,
    as a second remover would."""

    def __init__(self, chains: set[str], racer: str | None = None) -> None:
        self.chains = chains
        self.racer = racer
        self.stuck: set[str] = set()  # chains that refuse -X (still referenced)

    def __call__(self, args: Sequence[str]) -> subprocess.CompletedProcess[str]:
        op = next(a for a in args if a in ("-C", "-D", "-L", "-F", "-X"))
        chain = args[-1] if op in ("-L", "-F", "-X") else ""
        ok = chain in self.chains
        if op == "-C":
            ok = False  # no hooks left
        elif op == "-L" and ok and chain == self.racer:
            self.chains.discard(chain)  # listed, then gone
        elif op == "-X" and ok and chain not in self.stuck:
            self.chains.discard(chain)
        elif op == "-X":
            ok = False
        return subprocess.CompletedProcess(args, 0 if ok else 1, "", "" if ok else "refused")


def test_a_chain_another_remover_took_is_not_an_error() -> None:
    firewall = Firewall("port", [])
    table = Iptables({firewall.forward, firewall.input}, racer=firewall.input)
    firewall._run = table
    firewall.remove()
    assert table.chains == set()


def test_a_chain_that_will_not_go_is_an_error() -> None:
    firewall = Firewall("port", [])
    table = Iptables({firewall.forward, firewall.input})
    table.stuck.add(firewall.input)
    firewall._run = table
    with pytest.raises(BackendError, match="refused"):
        firewall.remove()
