"""The host's firewall rules that keep Pods away from the host and from private networks.

Every Pod network of an instance has a bridge named ``pt<tag>s<setup>`` (``tag``: six hex
digits of the instance's hash), so two chains of Port's own cover them all with one
interface wildcard, however many Setups come and go:

- ``PORT-FWD-<tag>``, jumped to from ``DOCKER-USER`` (Docker runs that chain before its
  own rules in ``FORWARD``): what a Pod sends through the host. Replies and allowed
  networks pass; loopback, private, shared (CGNAT), link-local (cloud metadata),
  multicast and reserved destinations are rejected; the rest, the public internet,
  passes on to Docker's rules (which also drop traffic between two bridges).
  The host's DNS resolvers (``/etc/resolv.conf``) may be asked on port 53: the
  engine's DNS server inside each Pod forwards outside names to them.
- ``PORT-IN-<tag>``, jumped to from ``INPUT``: what a Pod sends to the host itself, on
  any of its addresses (a bridge gateway, the LAN address, ...). Only replies to the
  host's own connections, allowed networks and the *door* pass: Port's own TCP port on
  the one host address where Port listens for Pods (``Backend.host_address``). Any
  other service of the host, even one bound to ``0.0.0.0``, is not reachable.

The chains are made when the instance's first Pod network is, and removed with its
last. IPv4 only: Pod networks have no IPv6. Needs root on the engine's host (the
``iptables`` command); without it, starting a Pod fails with a message that says so.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import shutil
import subprocess
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from port.deploy.backends.base import BackendError

log = logging.getLogger(__name__)

# Destinations a Pod may not reach unless an admin allows them (RFC 6890's special
# purpose registry, the parts that are not the public internet).
BLOCKED = (
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "224.0.0.0/4",
    "240.0.0.0/4",
)
TIMEOUT_SECONDS = 20
Run = Callable[[Sequence[str]], subprocess.CompletedProcess[str]]


def tag(instance: str) -> str:
    """Six hex digits naming ``instance`` in interface and chain names (15/28 chars max)."""
    return hashlib.sha256(instance.encode()).hexdigest()[:6]


def bridge_name(instance: str, tenant: int) -> str:
    """``pt1a2b3cs7f``: the bridge of one Setup's network (hex id; Linux allows 15 chars)."""
    name = f"pt{tag(instance)}s{tenant:x}"
    if len(name) > 15:
        raise BackendError(f"setup id {tenant} is too large for a bridge name")
    return name


def _iptables(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["iptables", "-w", "5", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )


class Firewall:
    """The two chains of one instance; ``ensure`` and ``remove`` are idempotent."""

    def __init__(
        self,
        instance: str,
        allowed: Sequence[str],
        dns: Sequence[str] = (),
        run: Run = _iptables,
    ) -> None:
        self.tag = tag(instance)
        self.interfaces = f"pt{self.tag}s+"
        self.forward = f"PORT-FWD-{self.tag}"
        self.input = f"PORT-IN-{self.tag}"
        self.allowed = [str(ipaddress.ip_network(net)) for net in allowed]
        self.dns = [f"{ipaddress.IPv4Address(server)}/32" for server in dns]
        self._run = run
        self._lock = threading.Lock()

    def _do(self, *args: str) -> subprocess.CompletedProcess[str]:
        try:
            done = self._run(args)
        except (OSError, subprocess.SubprocessError) as exc:
            raise self._refused(str(exc)) from exc
        return done

    def _must(self, *args: str) -> None:
        done = self._do(*args)
        if done.returncode != 0:
            raise self._refused(done.stderr.strip() or f"exit code {done.returncode}")

    def _unless_gone(self, check: tuple[str, ...], *args: str) -> None:
        """``_must(*args)``, unless it failed because ``check`` no longer holds."""
        done = self._do(*args)
        if done.returncode != 0 and self._has(*check):
            raise self._refused(done.stderr.strip() or f"exit code {done.returncode}")

    def _has(self, *args: str) -> bool:
        return self._do(*args).returncode == 0

    @staticmethod
    def _refused(reason: str) -> BackendError:
        hint = "" if shutil.which("iptables") else " (no iptables command)"
        return BackendError(
            f"tenant isolation could not be set up{hint}: {reason}. Port must run as root "
            "on the engine's host to keep Pods from the host and private networks; "
            "PORT_DOCKER_FIREWALL=false starts Pods without that protection"
        )

    def _rules(self, door: tuple[str, int] | None) -> dict[str, list[list[str]]]:
        replies = ["-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "RETURN"]
        allowed = [["-d", net, "-j", "RETURN"] for net in self.allowed]
        # The engine's DNS inside each Pod asks the host's resolvers for outside names.
        dns = [
            ["-d", server, "-p", protocol, "-m", protocol, "--dport", "53", "-j", "RETURN"]
            for server in self.dns
            for protocol in ("udp", "tcp")
        ]
        # Port itself, where it listens for Pods: the apps' way to their server.
        to_port: list[list[str]] = []
        if door:
            address, port = f"{ipaddress.IPv4Address(door[0])}/32", str(door[1])
            to_port = [["-d", address, "-p", "tcp", "-m", "tcp", "--dport", port, "-j", "RETURN"]]
        reject = ["-j", "REJECT", "--reject-with", "icmp-admin-prohibited"]
        blocked = [["-d", net, *reject] for net in BLOCKED]
        return {
            self.forward: [replies, *allowed, *dns, *blocked],
            self.input: [replies, *allowed, *to_port, reject],
        }

    def ensure(self, door: tuple[str, int] | None = None) -> None:
        """Make both chains with their rules and hook them in (again, if removed).
        ``door``: the host address and TCP port where Port listens for Pods."""
        with self._lock:
            if not self._has("-n", "-L", "DOCKER-USER"):
                # An engine that manages no iptables rules has no DOCKER-USER chain.
                self._must("-N", "DOCKER-USER")
                self._must("-I", "FORWARD", "1", "-j", "DOCKER-USER")
            for chain, rules in self._rules(door).items():
                wanted = [f"-N {chain}", *(" ".join(["-A", chain, *rule]) for rule in rules)]
                listed = self._do("-S", chain)
                if listed.returncode == 0 and listed.stdout.splitlines() == wanted:
                    continue  # as it should be: no flush, so no moment without rules
                if listed.returncode == 0:
                    self._must("-F", chain)
                else:
                    self._must("-N", chain)
                for rule in rules:
                    self._must("-A", chain, *rule)
            for parent, chain in (("DOCKER-USER", self.forward), ("INPUT", self.input)):
                hook = ("-i", self.interfaces, "-j", chain)
                if not self._has("-C", parent, *hook):
                    self._must("-I", parent, "1", *hook)
        log.info("firewall chains %s and %s guard %s", self.forward, self.input, self.interfaces)

    def remove(self) -> None:
        """Unhook and delete both chains; what is not there is fine, and so is what
        another remover (a second process of the instance) takes away meanwhile."""
        found = False
        with self._lock:
            for parent, chain in (("DOCKER-USER", self.forward), ("INPUT", self.input)):
                hook = ("-i", self.interfaces, "-j", chain)
                while self._has("-C", parent, *hook):
                    found = True
                    self._unless_gone(("-C", parent, *hook), "-D", parent, *hook)
                if self._has("-n", "-L", chain):
                    found = True
                    self._unless_gone(("-n", "-L", chain), "-F", chain)
                    self._unless_gone(("-n", "-L", chain), "-X", chain)
        if found:  # a pass with nothing to remove says nothing
            log.info("firewall chains %s and %s removed", self.forward, self.input)


def host_resolvers(path: Path = Path("/etc/resolv.conf")) -> list[str]:
    """The IPv4 name servers of the host outside loopback (Docker replaces loopback ones
    by public resolvers for containers)."""
    servers = []
    try:
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "nameserver":
                    try:
                        address = ipaddress.IPv4Address(parts[1])
                    except ValueError:
                        continue  # IPv6: Pod networks have none
                    if not address.is_loopback:
                        servers.append(str(address))
    except OSError:
        return []  # no resolv.conf: the engine gives Pods public resolvers then
    return servers
