"""Clusters that upstream eggo deployed: `/etc/eggo/<cluster-id>/`, read, never written.

Why read them at all: an eggo user has clusters running, recorded by eggo in `/etc/eggo/<id>/`
(`deploy.yaml` as eggo loaded it, `pki/`, `admin.conf`, `encryption-config.yaml`). They should
see them in `list`, inspect them (`status`, `kubeconfig`, `check --id`) and move them over
without redeploying (`import`), while eggo's records stay exactly as they are: eggo may still
be used on them, and a tool that rewrote them could not be walked back from.

So the read-only commands work on a view: the config is read from `/etc/eggo/<id>/deploy.yaml`,
and what a run writes (the recorded SSH host keys, `inspect.log`) goes to a private dir of ours,
`$EGGO_HOME/upstream/<id>`, whose `pki` and `admin.conf` are links to eggo's (read by `status`
for the controller's certificate expiries, and by `kubeconfig`). Commands that change the
cluster are refused until it is imported (`import --id ID`): that copies the CAs, the
service-account key pair and the encryption key into our state dir, so the running cluster
keeps trusting what we issue, and saves the config the way `deploy` does.

`EGGO_UPSTREAM_HOME` moves the root (`/etc/eggo`), for tests and for a copy of it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from eggo_nornir import state
from eggo_nornir.errors import UsageError

UPSTREAM_HOME_ENV = "EGGO_UPSTREAM_HOME"
DEFAULT_UPSTREAM_HOME = "/etc/eggo"
SAVED_CONFIG = "deploy.yaml"  # eggo's name, and ours
#: What `import` takes from eggo's pki/: the trust roots and keys the running cluster depends on
#: (its leaves are re-issued from these CAs by the next deploy, as for any missing leaf).
PKI_KEPT = (
    "ca.crt",
    "ca.key",
    "front-proxy-ca.crt",
    "front-proxy-ca.key",
    "sa.key",
    "sa.pub",
    "etcd/ca.crt",
    "etcd/ca.key",
)
ENCRYPTION_CONFIG = "encryption-config.yaml"  # eggo's name, and ours


def upstream_home() -> Path:
    """Where eggo keeps its clusters: `$EGGO_UPSTREAM_HOME`, default `/etc/eggo`."""
    return Path(os.environ.get(UPSTREAM_HOME_ENV) or DEFAULT_UPSTREAM_HOME)


def upstream_dir(cluster_id: str) -> Path | None:
    """eggo's dir of `cluster_id` when it holds a saved deploy.yaml, else None."""
    if not cluster_id or "/" in cluster_id or cluster_id in (".", ".."):
        return None
    path = upstream_home() / cluster_id
    return path if (path / SAVED_CONFIG).is_file() else None


def upstream_ids() -> list[str]:
    """Every cluster eggo recorded (`<root>/*/deploy.yaml`), sorted; none when the root is unreadable."""
    try:
        return sorted(p.parent.name for p in upstream_home().glob(f"*/{SAVED_CONFIG}") if p.is_file())
    except OSError:
        return []


def must_import(cluster_id: str, command: str) -> UsageError:
    """The error of a command that would change a cluster eggo deployed and we have not imported."""
    where = upstream_home() / cluster_id
    return UsageError(
        f"cluster {cluster_id} was deployed by eggo ({where}); `{command}` changes it, so import it "
        f"first: eggo-nornir import --id {cluster_id} (eggo's files stay as they are). Read-only "
        f"until then: status, kubeconfig and check with --id {cluster_id}"
    )


def view_dir(cluster_id: str) -> Path:
    """Our private dir for read-only runs on eggo's cluster: host keys and `inspect.log` go here;
    `pki` and `admin.conf` are links to eggo's, so nothing of eggo's is ever written."""
    source = upstream_home() / cluster_id
    view = state.private_dir(state.eggo_home() / "upstream" / cluster_id)
    for name in ("pki", "admin.conf"):
        link = view / name
        target = source / name
        if link.is_symlink() and Path(os.readlink(link)) == target:
            continue
        if link.is_symlink() or link.exists():
            if link.is_dir() and not link.is_symlink():
                shutil.rmtree(link)
            else:
                link.unlink()
        link.symlink_to(target)
    return view


def import_state(cluster_id: str, state_dir: Path) -> list[str]:
    """Copy what the running cluster trusts from eggo's dir into `state_dir` (0700, files 0600):
    the CAs, the service-account keys and the encryption key. Returns the files copied.

    Refuses a state dir that already has a PKI: two sets of CAs for one cluster is a mistake
    nobody should make by re-running a command.
    """
    source = upstream_home() / cluster_id
    if (state_dir / "pki" / "ca.crt").exists():
        raise UsageError(
            f"{state_dir} already has a PKI; cluster {cluster_id} is imported already "
            f"(see `list`), or remove that dir first"
        )
    missing = [name for name in PKI_KEPT if not (source / "pki" / name).is_file()]
    if missing:
        raise UsageError(
            f"{source / 'pki'} lacks {', '.join(missing)}: not an eggo cluster dir this can import"
        )
    copied = []
    for name in PKI_KEPT:
        state.write_private(state_dir / "pki" / name, (source / "pki" / name).read_bytes())
        copied.append(f"pki/{name}")
    if (source / ENCRYPTION_CONFIG).is_file():
        state.write_private(state_dir / ENCRYPTION_CONFIG, (source / ENCRYPTION_CONFIG).read_bytes())
        copied.append(ENCRYPTION_CONFIG)
    return copied
