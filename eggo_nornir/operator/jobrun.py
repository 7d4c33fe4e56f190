"""What runs inside a deploy Job: restore the state, run one action, save the state, summarise.

Why a separate step from the operator: the Job is where SSH, the bundle and the run's CPU
time are, scheduled by the meta-cluster wherever it likes; the operator only decides. The
Job gets everything it needs from its own spec (the configs as canonical YAML, the nodes)
and its mounts (the credentials Secret, the bundle), and reports through its pod's
termination message, so the operator learns the outcome even after a restart.

Secrets never reach the output: the summary and every line printed pass through the run's
`Redactor`, which knows the credentials and the state dir's keys and tokens.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from eggo_nornir.config import load_config_dict
from eggo_nornir.config.model import ClusterConfig
from eggo_nornir.engine.redact import Redactor
from eggo_nornir.errors import ConfigError, EggoError
from eggo_nornir.operator import jobs
from eggo_nornir.operator.desired import BUNDLE_DIR, HOST_LISTS
from eggo_nornir.operator.statestore import SecretStore, restore, save

TERMINATION_LOG = "/dev/termination-log"
_MESSAGE_LIMIT = 4000  # the kubelet keeps 4096 bytes of a termination message
CREDENTIAL_FILES = ("username", "password", "ssh-privatekey", "sudo-password")


@dataclass(frozen=True)
class JobInput:
    """A Job's instructions, as the operator wrote them into its env."""

    cluster: str
    action: str
    base: str
    target: str
    join: tuple[dict[str, Any], ...] = ()
    delete: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, action: str, env: Mapping[str, str]) -> JobInput:
        if action not in jobs.ACTIONS:
            raise EggoError(f"unknown action {action!r}")
        return cls(
            cluster=env[jobs.ENV_NAME],
            action=action,
            base=env.get(jobs.ENV_BASE, ""),
            target=env.get(jobs.ENV_TARGET, ""),
            join=tuple(json.loads(env.get(jobs.ENV_JOIN) or "[]")),
            delete=tuple(json.loads(env.get(jobs.ENV_DELETE) or "[]")),
        )


def read_credentials(directory: Path) -> dict[str, str]:
    """The credentials Secret's keys, as mounted (missing keys are simply absent)."""
    out: dict[str, str] = {}
    for key in CREDENTIAL_FILES:
        path = directory / key
        if path.is_file():
            out[key] = path.read_text().strip("\n") if key != "ssh-privatekey" else path.read_text()
    return out


def with_credentials(text: str, creds: Mapping[str, str], key_file: Path | None) -> dict[str, Any]:
    """A canonical config with the Secret's credentials put back (global, and sudo per host)."""
    doc = yaml.safe_load(text) or {}
    if creds.get("username"):
        doc["username"] = creds["username"]
    if creds.get("password"):
        doc["password"] = creds["password"]
    if key_file is not None:
        doc["private-key-path"] = str(key_file)
    if creds.get("sudo-password"):
        for key in HOST_LISTS:
            for entry in doc.get(key) or []:
                entry["sudo-password"] = creds["sudo-password"]
        if isinstance(doc.get("loadbalance"), dict):
            doc["loadbalance"]["sudo-password"] = creds["sudo-password"]
    return doc


def _load(text: str, creds: Mapping[str, str], key_file: Path | None) -> ClusterConfig:
    return load_config_dict(with_credentials(text, creds, key_file), base_dir=BUNDLE_DIR)


def run_action(job: JobInput, cfg_of: Callable[[str], ClusterConfig], state_dir: Path) -> Any:
    """Run the action through the `Cluster` API; returns its RunResult."""
    from eggo_nornir.cluster import Cluster

    if job.action == "deploy":
        return Cluster(cfg_of(job.target), state_dir=state_dir).deploy(progress=True)
    if job.action == "cleanup":
        return Cluster(cfg_of(job.base), state_dir=state_dir).cleanup(progress=True)
    if job.action == "delete":
        return Cluster(cfg_of(job.base), state_dir=state_dir).delete(list(job.delete), progress=True)
    # join; a retry after a join that got past its preflight finds the joiners in the saved
    # config already, and the base config would be refused for lacking them: start from the target
    saved = state_dir / "deploy.yaml"
    ips = {spec["ip"] for spec in job.join}
    start = job.base
    if saved.is_file():
        listed = yaml.safe_load(saved.read_text()) or {}
        if any(e.get("ip") in ips for k in HOST_LISTS for e in listed.get(k) or []):
            start = job.target
    return Cluster(cfg_of(start), state_dir=state_dir).join(list(job.join), progress=True)


def ready_nodes(kubeconfig: Path) -> str | None:
    """`ready/total` Nodes of the deployed cluster, through its admin kubeconfig; None if unknown."""
    try:
        from kubernetes import client, config
    except ImportError:
        return None
    try:
        api = client.CoreV1Api(config.new_client_from_config(str(kubeconfig)))
        nodes = api.list_node(_request_timeout=20).items
    except Exception:
        return None
    ready = sum(
        1 for n in nodes if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])
    )
    return f"{ready}/{len(nodes)}"


def summarise(result: Any, ready: str | None) -> dict[str, Any]:
    """The termination message: the run's outcome, hosts x phases when it fits."""
    report = result.to_dict()
    out: dict[str, Any] = {
        "exitCode": 0 if result.ok else 1,
        "changed": result.changed,
        "failedHosts": list(result.failed_hosts),
        "seconds": report.get("seconds"),
        "message": "ok" if result.ok else f"failed (aborted after {result.aborted_at or '-'})",
        "hosts": {
            host: {phase: r.get("status", "") for phase, r in data["phases"].items()}
            for host, data in report["hosts"].items()
        },
    }
    if ready is not None:
        out["readyNodes"] = ready
    return out


def fit(summary: dict[str, Any]) -> str:
    """The summary as JSON within the termination message's limit (hosts dropped first)."""
    text = json.dumps(summary, sort_keys=True)
    if len(text) > _MESSAGE_LIMIT:
        summary = {k: v for k, v in summary.items() if k != "hosts"}
        text = json.dumps(summary, sort_keys=True)
    if len(text) > _MESSAGE_LIMIT:
        summary["problems"] = summary.get("problems", [])[:5]
        summary["failedHosts"] = summary.get("failedHosts", [])[:20]
        text = json.dumps(summary, sort_keys=True)[:_MESSAGE_LIMIT]
    return text


def execute(
    job: JobInput,
    store: SecretStore,
    credentials_dir: Path,
    work_dir: Path,
    termination_log: Path | None = None,
    runner: Callable[[JobInput, Callable[[str], ClusterConfig], Path], Any] = run_action,
) -> int:
    """The whole Job; returns its exit code (0 ok, 1 run failed, 2 config problem)."""
    state_dir = work_dir / "state"
    creds = read_credentials(credentials_dir)
    key_file: Path | None = None
    if creds.get("ssh-privatekey"):
        key_file = work_dir / "ssh-key"
        key_file.write_text(creds["ssh-privatekey"])
        key_file.chmod(0o600)
    restore(store, job.cluster, state_dir)
    redactor = Redactor([creds.get("password"), creds.get("sudo-password")])
    if creds.get("ssh-privatekey"):
        redactor.add_private_key(creds["ssh-privatekey"])
    redactor.add_state_dir(state_dir)

    def cfg_of(text: str) -> ClusterConfig:
        return _load(text, creds, key_file)

    summary: dict[str, Any]
    try:
        result = runner(job, cfg_of, state_dir)
    except ConfigError as exc:
        summary = {"exitCode": 2, "problems": [str(p) for p in exc.problems], "message": "config problems"}
    except EggoError as exc:
        summary = {"exitCode": exc.exit_code, "message": str(exc)}
    else:
        ready = ready_nodes(state_dir / "admin.conf") if result.ok and job.action != "cleanup" else None
        summary = summarise(result, ready)
    finally:
        save(store, job.cluster, state_dir)
    redactor.add_state_dir(state_dir)  # a first run created the keys and token just now
    text = redactor.redact(fit(summary))
    print(f"eggo-nornir operator job {job.action} {job.cluster}: {text}", flush=True)
    if termination_log is not None:
        with contextlib.suppress(OSError):
            termination_log.write_text(text)
    return int(summary["exitCode"])


def main(action: str) -> int:
    """`eggo-nornir operator job ACTION`, inside a Job's pod."""
    from eggo_nornir.operator.kube import SecretsAPI, load_kube_config

    job = JobInput.from_env(action, os.environ)
    api = load_kube_config(None)
    store = SecretsAPI(api, os.environ.get(jobs.ENV_NAMESPACE) or "default")
    with tempfile.TemporaryDirectory(prefix="eggo-job-") as tmp:
        os.environ.setdefault("EGGO_HOME", tmp)
        code = execute(job, store, Path(jobs.CREDENTIALS_DIR), Path(tmp), Path(TERMINATION_LOG))
    sys.stdout.flush()
    return code
