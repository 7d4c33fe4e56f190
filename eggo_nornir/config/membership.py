"""Membership changes as config edits: the cluster after `join` or `delete`, validated like any deploy.yaml.

Why edit the document instead of the model: the merged cluster must pass every rule a
deploy.yaml passes (unique names and IPs, the service network, the LB), and the one
place that knows those rules is the loader. So a join or a delete turns the model back
into its upstream-dialect mapping (`dump.to_dict`), edits the host lists, and loads the
result again. A bad join is then reported exactly like a bad deploy.yaml, with key paths.

Semantics follow upstream eggo's `join`/`delete`, with its defects fixed:
- a joined master also becomes an etcd member (unless etcd is external), as upstream does;
- a node that is already in the cluster keeps its name, port and arch and gains the roles
  it is joined with (a worker can become a master), and joining it again changes nothing;
- a new node without `--name` is called `<cluster-id>-<role>-<n>` with the first free n;
- `delete` takes names or IPs and removes the node from every role list; the load
  balancer, the last master and the master named by `apiserver-endpoint` cannot be
  deleted (every kubeconfig points there), whatever `--force` says.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eggo_nornir.config.loader import read_yaml
from eggo_nornir.config.model import ClusterConfig, Node, normalise_arch
from eggo_nornir.errors import ConfigError, Problem, UsageError, problem

JOIN_ROLES: tuple[str, ...] = ("master", "worker")
JOIN_FILE_KEYS: tuple[str, ...] = ("masters", "workers")
_HOST_KEYS: tuple[str, ...] = ("name", "ip", "port", "arch")


@dataclass(frozen=True)
class JoinNode:
    """One machine to join: its address and the roles it gets (`master`, `worker` or both)."""

    ip: str
    roles: tuple[str, ...] = ("worker",)
    name: str | None = None
    arch: str | None = None
    port: int | None = None


def parse_type(text: str) -> tuple[str, ...]:
    """eggo's `--type`: `master`, `worker` or `master,worker` (any order, no repeats)."""
    roles = tuple(dict.fromkeys(r.strip() for r in str(text).split(",") if r.strip()))
    bad = [r for r in roles if r not in JOIN_ROLES]
    if not roles or bad:
        raise UsageError(f"--type must be master, worker or master,worker (got {text!r})")
    return roles


def _join_entry(entry: Any, path: str, role: str, problems: list[Problem]) -> JoinNode | None:
    if not isinstance(entry, Mapping):
        problems.append(problem(path, "must be a mapping with at least `ip`", type(entry).__name__))
        return None
    unknown = sorted(str(k) for k in entry if k not in _HOST_KEYS)
    for key in unknown:
        problems.append(problem(f"{path}.{key}", f"unknown key; a joined host has {', '.join(_HOST_KEYS)}"))
    ip = entry.get("ip")
    if not isinstance(ip, str) or not ip.strip():
        problems.append(problem(f"{path}.ip", "is required (the host's address)", ip))
        return None
    port = entry.get("port")
    if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536):
        problems.append(problem(f"{path}.port", "must be a port number 1-65535", port))
        return None
    name = entry.get("name")
    if name is not None and not isinstance(name, str):
        problems.append(problem(f"{path}.name", "must be a string", name))
        return None
    arch = entry.get("arch")
    if arch is not None and not isinstance(arch, str):
        problems.append(problem(f"{path}.arch", "must be a string", arch))
        return None
    return JoinNode(ip.strip(), (role,), name or None, arch, port)


def parse_join_document(doc: Any) -> list[JoinNode]:
    """eggo's join file: `masters:` and `workers:` lists of `{name, ip, port, arch}`.

    A host listed under both gets both roles. Raises ConfigError with every problem.
    """
    problems: list[Problem] = []
    if not isinstance(doc, Mapping):
        raise ConfigError([problem("", "a join file is a mapping with `masters:` and/or `workers:`", doc)])
    for key in doc:
        if key not in JOIN_FILE_KEYS:
            problems.append(problem(str(key), "unknown key; a join file has masters and workers"))
    found: dict[str, JoinNode] = {}
    for key, role in (("masters", "master"), ("workers", "worker")):
        entries = doc.get(key) or []
        if not isinstance(entries, list):
            problems.append(problem(key, "must be a list of hosts", type(entries).__name__))
            continue
        for i, entry in enumerate(entries):
            node = _join_entry(entry, f"{key}[{i}]", role, problems)
            if node is None:
                continue
            seen = found.get(node.ip)
            if seen is not None:
                node = JoinNode(
                    node.ip,
                    (*seen.roles, role),
                    seen.name or node.name,
                    seen.arch or node.arch,
                    seen.port or node.port,
                )
            found[node.ip] = node
    if problems:
        raise ConfigError(problems)
    if not found:
        raise ConfigError([problem("", "the join file lists no hosts under masters or workers")])
    return list(found.values())


def read_join_file(path: Path) -> list[JoinNode]:
    """`parse_join_document` of a YAML file (problems carry the file name)."""
    return parse_join_document(read_yaml(Path(path)))


def _find(cfg: ClusterConfig, ref: str) -> Node | None:
    for node in cfg.nodes:
        if ref in (node.name, node.ip):
            return node
    return None


def _free_name(cfg: ClusterConfig, role: str, taken: set[str]) -> str:
    i = 0
    while f"{cfg.cluster_id}-{role}-{i}" in taken:
        i += 1
    return f"{cfg.cluster_id}-{role}-{i}"


def _host_entry(node: JoinNode, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "ip": node.ip,
        "port": node.port or 22,
        "arch": normalise_arch(node.arch) if node.arch else "amd64",
    }


def _reload(doc: dict[str, Any]) -> ClusterConfig:
    from eggo_nornir.config import load_config_dict

    return load_config_dict(doc)


def join_nodes(cfg: ClusterConfig, nodes: Iterable[JoinNode]) -> tuple[ClusterConfig, list[str]]:
    """The cluster with `nodes` joined, and the names of the nodes that gained a role.

    An empty list of names means every node already had its roles (joining is idempotent).
    Raises ConfigError (with the merged document's key paths) when the result is invalid.
    """
    from eggo_nornir.config.dump import to_dict

    doc = to_dict(cfg)
    taken = {n.name for n in cfg.nodes}
    lists = {"master": doc["masters"], "worker": doc["workers"], "etcd": doc["etcds"]}
    changed: list[str] = []
    problems: list[Problem] = []
    for node in nodes:
        existing = _find(cfg, node.ip)
        if node.name and existing is None and node.name in taken:
            problems.append(problem("name", f"is already the name of another node than {node.ip}", node.name))
            continue
        if existing is not None:
            if node.name and node.name != existing.name:
                problems.append(
                    problem("name", f"{node.ip} is already in the cluster as {existing.name!r}", node.name)
                )
                continue
            entry = next(e for k in ("masters", "workers", "etcds") for e in doc[k] if e["ip"] == node.ip)
            entry = {k: entry[k] for k in _HOST_KEYS if k in entry}
            name = existing.name
        else:
            name = node.name or _free_name(cfg, node.roles[0], taken)
            entry = _host_entry(node, name)
            taken.add(name)
        roles = list(node.roles)
        if "master" in roles and not cfg.etcd_external:
            roles.append("etcd")
        for role in roles:
            if not any(e.get("ip") == node.ip for e in lists[role]):
                lists[role].append(dict(entry))
                if name not in changed:
                    changed.append(name)
    if problems:
        raise ConfigError(problems)
    return _reload(doc), changed


def resolve_nodes(cfg: ClusterConfig, refs: Sequence[str]) -> list[Node]:
    """The nodes named by `refs` (names or IPs), or UsageError naming every unknown one."""
    found: list[Node] = []
    unknown: list[str] = []
    for ref in refs:
        node = _find(cfg, ref)
        if node is None:
            unknown.append(ref)
        elif node not in found:
            found.append(node)
    if unknown:
        raise UsageError(
            f"not in cluster {cfg.cluster_id}: {', '.join(unknown)} "
            f"(nodes: {', '.join(n.name for n in cfg.nodes)})"
        )
    return found


def delete_nodes(cfg: ClusterConfig, refs: Sequence[str]) -> tuple[ClusterConfig, list[Node]]:
    """The cluster without the nodes named by `refs` (names or IPs), and the removed nodes.

    Refuses (UsageError) what no `--force` can make safe: deleting the load balancer, every
    master, or the master that `apiserver-endpoint` names (every kubeconfig points there).
    """
    from eggo_nornir.config.dump import to_dict

    removed = resolve_nodes(cfg, refs)
    names = {n.name for n in removed}
    lb = cfg.loadbalance.name if cfg.loadbalance else None
    if lb in names:
        raise UsageError(f"{lb} is the load balancer; it cannot be deleted (cleanup removes the cluster)")
    if set(cfg.masters) <= names:
        raise UsageError("refusing to delete every master: a cluster needs one (use cleanup instead)")
    if cfg.etcds and not cfg.etcd_external and set(cfg.etcds) <= names:
        raise UsageError("refusing to delete every etcd member: the cluster's data lives there")
    endpoint = [n.name for n in removed if n.ip == cfg.endpoint_host]
    if endpoint:
        raise UsageError(
            f"{endpoint[0]} is the apiserver-endpoint ({cfg.apiserver_endpoint}) that every kubeconfig "
            "uses; put a load balancer in front of the masters before deleting it"
        )
    doc = to_dict(cfg)
    for key in ("masters", "workers", "etcds"):
        doc[key] = [e for e in doc[key] if e.get("name") not in names]
    return _reload(doc), removed
