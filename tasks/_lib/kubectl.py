"""kubectl on a master, as the cluster tasks use it: retries, honest diffs, JSON.

Why kubectl on the host and not a Python client on the controller: the API is reachable from
a master even when the controller only has SSH to the machines (the common offline case), the
admin kubeconfig is already there, and every command shows up in the run log as something an
operator can paste.

Why `kubectl diff` before `kubectl apply`: apply always exits 0 and prints "configured" or
"serverside-applied" even when nothing changed, so it cannot tell a re-run that changes
nothing from a real change. `kubectl diff` exits 0 for no difference, 1 for differences, and
above 1 for errors; that makes `changed` honest and gives dry runs a real diff to show.

Applies are server-side (`--server-side --force-conflicts`, field manager `eggo-nornir`):
large manifests such as calico's CRDs exceed the 256 KiB annotation limit of client-side
apply's `last-applied-configuration`, and `--force-conflicts` lets us take over fields an
earlier client-side apply (upstream eggo, or a human) owned.
"""

from __future__ import annotations

import json
import re
from collections.abc import Container
from dataclasses import dataclass
from typing import Any

from eggo_nornir.remote import Remote
from eggo_nornir.remote.errors import CommandFailed, CommandTimeout
from eggo_nornir.remote.results import CommandResult
from eggo_nornir.render import paths as p
from eggo_nornir.tasks._lib.waiting import CLOCK

KUBECTL = p.binary("kubectl")
ADMIN_CONF = p.ADMIN_CONF
FIELD_MANAGER = "eggo-nornir"
APPLY_FLAGS: tuple[str, ...] = ("--server-side", "--force-conflicts", f"--field-manager={FIELD_MANAGER}")
# how often a command is retried while the apiserver is briefly unavailable (a restart, a leader
# change in etcd, the LB failing over), and how long to wait in between
RETRIES = 4
RETRY_INTERVAL = 3.0
_TRANSIENT = re.compile(
    r"connection refused|connection reset by peer|unable to connect to the server|"
    r"the server is currently unable to handle the request|tls handshake timeout|i/o timeout|"
    r"etcdserver: (request timed out|leader changed)|http2: server sent goaway|"
    r"context deadline exceeded|the server was unable to return a response|no route to host|"
    r"serviceunavailable|the object has been modified|unexpected eof",
    re.IGNORECASE,
)


def is_transient(res: CommandResult) -> bool:
    """True when a failure looks like the apiserver being away for a moment, not a real error."""
    return bool(_TRANSIENT.search(res.stderr or "") or _TRANSIENT.search(res.stdout or ""))


def kubectl(
    remote: Remote,
    *args: str,
    kubeconfig: str = ADMIN_CONF,
    stdin: bytes | None = None,
    timeout: float = 60,
    check: bool = True,
    server: str | None = None,
    ok_rcs: Container[int] = (0,),
    retries: int = RETRIES,
) -> CommandResult:
    """Run `kubectl --kubeconfig=<kubeconfig> [--server=<server>] <args>` on the host.

    A failure whose message says the API was unreachable or overloaded is retried `retries`
    times, `RETRY_INTERVAL` apart (via `CLOCK`, so tests do not sleep). An exit code in
    `ok_rcs` is a success (`kubectl diff` uses 0 and 1). With `check` a final failure raises
    `CommandFailed`.
    """
    argv = [KUBECTL, f"--kubeconfig={kubeconfig}"]
    if server:
        argv.append(f"--server={server}")
    argv += list(args)
    attempt = 0
    while True:
        try:
            res = remote.run(argv, stdin=stdin, timeout=timeout, check=False)
        except CommandTimeout:
            if attempt >= retries:
                raise
            res = None
        if res is not None and (res.rc in ok_rcs or not is_transient(res) or attempt >= retries):
            break
        attempt += 1
        CLOCK.sleep(RETRY_INTERVAL)
    if check and res.rc not in ok_rcs:
        raise CommandFailed(remote.host, res.command, res.rc, res.stderr, res.stdout)
    return res


# ---- manifests ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Diff:
    """What `kubectl diff` said: whether the cluster differs, the diff text, or the error."""

    changed: bool
    text: str = ""
    error: str = ""


def diff_manifest(
    remote: Remote,
    path: str,
    kubeconfig: str = ADMIN_CONF,
    *,
    stdin: bytes | None = None,
    server: str | None = None,
) -> Diff:
    """`kubectl diff` of `path` (or of `stdin` when given) against the live cluster.

    Never raises for a failing diff: an error (rc > 1) comes back as `Diff(changed=True,
    error=...)`, because the usual causes (a CRD or namespace the manifest itself creates)
    mean the apply is needed, and the apply then reports any real error.
    """
    res = _on_manifest(remote, "diff", path, kubeconfig, stdin, server, ok_rcs=(0, 1), check=False)
    if res.rc == 0:
        return Diff(False)
    if res.rc == 1:
        return Diff(True, res.stdout)
    return Diff(True, "", (res.stderr or res.stdout).strip()[-2000:] or f"kubectl diff rc={res.rc}")


@dataclass(frozen=True)
class Applied:
    """Outcome of `ensure_manifest`: `changed` (applied, or would be in a dry run) and the diff."""

    changed: bool
    diff: str = ""
    note: str = ""


def ensure_manifest(
    remote: Remote,
    path: str,
    kubeconfig: str = ADMIN_CONF,
    *,
    dry_run: bool = False,
    stdin: bytes | None = None,
    server: str | None = None,
    force: bool = False,
) -> Applied:
    """Apply `path` only when the cluster differs from it (or when `force`); never in a dry run.

    `force` skips the diff, for a caller that already knows the manifest changed.
    """
    if force:
        if dry_run:
            return Applied(True, "", f"would apply {path}")
        apply_file(remote, path, kubeconfig, server=server, stdin=stdin)
        return Applied(True, "", f"applied {path}")
    d = diff_manifest(remote, path, kubeconfig, stdin=stdin, server=server)
    if not d.changed:
        return Applied(False, "", f"{path}: cluster up to date")
    note = f"kubectl diff failed ({d.error}); " if d.error else ""
    if dry_run:
        return Applied(True, d.text, f"{note}would apply {path}")
    apply_file(remote, path, kubeconfig, server=server, stdin=stdin)
    return Applied(True, d.text, f"{note}applied {path}")


def apply_file(
    remote: Remote,
    path: str,
    kubeconfig: str = ADMIN_CONF,
    *,
    server: str | None = None,
    stdin: bytes | None = None,
) -> CommandResult:
    """`kubectl apply --server-side --force-conflicts -f path` (no diff first)."""
    return _on_manifest(remote, "apply", path, kubeconfig, stdin, server, timeout=180)


def _on_manifest(
    remote: Remote,
    verb: str,
    path: str,
    kubeconfig: str,
    stdin: bytes | None,
    server: str | None,
    *,
    timeout: float = 60,
    check: bool = True,
    ok_rcs: Container[int] = (0,),
) -> CommandResult:
    """`kubectl <verb>` (diff or apply) of `path`, or of `stdin` when given, with the same
    server-side apply flags, so that a diff shows exactly what the apply would do."""
    target = "-" if stdin is not None else path
    return kubectl(
        remote,
        verb,
        *APPLY_FLAGS,
        "-f",
        target,
        kubeconfig=kubeconfig,
        stdin=stdin,
        server=server,
        timeout=timeout,
        check=check,
        ok_rcs=ok_rcs,
    )


def apply_manifest(remote: Remote, path: str, kubeconfig: str = ADMIN_CONF) -> bool:
    """Apply `path` if the cluster differs from it; True when something was applied."""
    return ensure_manifest(remote, path, kubeconfig).changed


# ---- JSON ---------------------------------------------------------------------------------------


def parse_json(text: str, what: str = "kubectl output") -> Any:
    """JSON from kubectl or etcdctl, with an error that names what was being read."""
    try:
        return json.loads(text)
    except ValueError as exc:
        raise RuntimeError(f"cannot parse {what} as JSON: {exc}: {text[:300]!r}") from None


def get_json(remote: Remote, *args: str, kubeconfig: str = ADMIN_CONF, server: str | None = None) -> Any:
    """`kubectl get <args> -o json`, parsed."""
    res = kubectl(remote, "get", *args, "-o", "json", kubeconfig=kubeconfig, server=server)
    return parse_json(res.stdout, f"kubectl get {' '.join(args)}")


def items(doc: Any) -> list[dict[str, Any]]:
    """The `items` of a List (or the object itself when kubectl returned a single object)."""
    if isinstance(doc, dict) and doc.get("kind", "").endswith("List"):
        return [i for i in doc.get("items") or [] if isinstance(i, dict)]
    return [doc] if isinstance(doc, dict) else []


def readyz(remote: Remote, server: str | None = None, kubeconfig: str = ADMIN_CONF) -> tuple[bool, str]:
    """One `/readyz` probe (no retries) of the apiserver at `server`, or the kubeconfig's
    server when None: (ok, what it said). Dry runs use it to skip the API when it is not up."""
    res = kubectl(
        remote,
        "get",
        "--raw",
        "/readyz",
        kubeconfig=kubeconfig,
        server=server,
        check=False,
        retries=0,
        timeout=20,
    )
    text = (res.stdout.strip() or res.stderr.strip())[-500:]
    return res.rc == 0 and res.stdout.strip() == "ok", text
