"""The one seam through which eggo-nornir touches a host: `run`, `put`, `get` over SSH.

`Remote` is a Protocol: tasks are typed against it and get their host's with
`remote_for(task)`. `SSHRemote` implements it over SSH; the Python API and tests can open
one directly with `SSHRemote.connect(node)`. Unit tests use `eggo_nornir.remote.fake`
(never imported by production code).

Modules, one job each:
- `protocol`: the `Remote` Protocol;
- `session`: `SSHRemote` (commands with concurrent stdout/stderr, timeout, env, stdin, sudo;
  files with compare-then-atomic-install);
- `sudo`: how a command is wrapped for sudo and env, and redaction;
- `put`: the pure compare/plan half of `put`, shared with the fake;
- `paramiko_speed`: a fix for paramiko 2.x's per-packet `repr` (half an upload's CPU);
- `fake`: `FakeRemote` and `use_fakes`, for unit tests only;
- `tempdirs`: removing the temp dirs of uploads a dead connection left behind;
- `hostkeys`: trust-on-first-use known_hosts in the cluster state dir;
- `connect`: opening the paramiko client (copied extras, no ~/.ssh/config, Terrapin, dead-link
  detection);
- `bastion`: connecting through a jump host (one shared connection, a channel per node);
- `nornir_plugin`: the `eggo_ssh` Nornir connection plugin and `remote_for(task)`;
- `errors`, `results`: the exception family and result types.
"""

from eggo_nornir.remote.errors import (
    CommandFailed,
    CommandTimeout,
    HostKeyChanged,
    RemoteError,
    SudoError,
    Unreachable,
)
from eggo_nornir.remote.protocol import Remote
from eggo_nornir.remote.results import CommandResult, PutResult, RemoteStats
from eggo_nornir.remote.session import SSHRemote, known_hosts_path

__all__ = [
    "CommandFailed",
    "CommandResult",
    "CommandTimeout",
    "HostKeyChanged",
    "PutResult",
    "Remote",
    "RemoteError",
    "RemoteStats",
    "SSHRemote",
    "SudoError",
    "Unreachable",
    "known_hosts_path",
]
