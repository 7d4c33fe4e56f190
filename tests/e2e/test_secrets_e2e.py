"""Issue 6 suite (f): no secret in any output, log, report or state file, whatever the run.

Run everything a user runs, as the non-root user whose SSH login and sudo both take the
password: deploy, a dry-run over drifted secret files (diffs!), `status --json`, `list`,
`certs check`, `etcd backup`, two failing runs (a hook that prints secrets to its stderr
and fails, and an unreachable extra worker, rolled back with `--rollback`, so errors and
exceptions get rendered), and cleanup. Then search every stdout and stderr, every report, every run record and
`nornir.log`, every state file outside `pki/`, and the machines' journals and /var/log,
for the password, the bootstrap token, the encryption key and every private key's body.

Why its own testbed: the dry-run drifts files and the failing runs leave a host failed, so
this must not share machines with other modules; two machines (a master that is also the
etcd member, and a worker) keep it cheap on a shared 2-core host.

The token is the one `deploy` generates (the config cannot set it), read back from the
state dir afterwards: that exercises the first run, whose redactor must learn a token
that did not exist when the command started.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from modtb import eggo_env, module_testbed, run_eggo

from eggo_nornir.testbed.handle import Testbed

pytestmark = pytest.mark.e2e

SUBNET = os.environ.get("EGGO_E2E_SECRETS_SUBNET", "10.225.61.0/24")
NAME = os.environ.get("EGGO_E2E_SECRETS_NAME", "eggoscs")
UNREACHABLE = str(SUBNET.rsplit(".", 1)[0]) + ".99"  # inside the subnet, no machine there

# State files that hold a secret by design, like pki/: the token and the encryption key are
# generated there, and an etcd snapshot holds every Secret of the cluster (README: keep it
# as safe as the PKI). `bundles/` holds the per-role parts of the input tarball.
SECRET_STORES = ("bootstrap-token", "encryption-config.yaml")
SKIPPED_DIRS = ("pki", "backups", "bundles")
# The operator's kubeconfig embeds the admin's client key by design (README: `admin.conf`);
# it is searched for everything else.
KEY_HOLDERS = ("admin.conf",)


@dataclass
class Run:
    """What the module ran and what came out of it, for the scan at the end."""

    tb: Testbed
    env: dict[str, str]
    config: Path
    outputs: list[tuple[str, str]] = field(default_factory=list)
    reports: list[Path] = field(default_factory=list)

    @property
    def state_dir(self) -> Path:
        return Path(self.env["EGGO_HOME"]) / "clusters" / NAME

    def eggo(self, label: str, *args: str, timeout: float = 1200) -> subprocess.CompletedProcess[str]:
        """`python -m eggo_nornir ARGS`; stdout and stderr are kept for the scan."""
        proc = run_eggo(self.env, *args, timeout=timeout)
        self.outputs += [(f"{label}: stdout", proc.stdout), (f"{label}: stderr", proc.stderr)]
        return proc

    def report(self, label: str) -> str:
        path = self.tb.out_dir / f"report-{label}.json"
        self.reports.append(path)
        return str(path)


@pytest.fixture(scope="module")
def run(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    with module_testbed(tmp_path_factory, bundle, name=NAME, subnet=SUBNET, machines=2) as tb:
        out = tb.out_dir
        doc = yaml.safe_load(tb.deploy_yaml.read_text())
        doc.pop("private-key-path", None)  # password authentication, as the sudo-with-password user
        doc.update({"username": "eggopw", "password": tb.password()})
        config = out / "deploy-secrets.yaml"
        config.write_text(yaml.safe_dump(doc, sort_keys=False))
        config.chmod(0o600)
        # HOME too: no default ~/.ssh key of the runner can stand in for the password
        yield Run(tb, {**eggo_env(tb), "HOME": str(out)}, config)


def _ok(proc: subprocess.CompletedProcess[str]) -> str:
    return proc.stdout[-4000:] + proc.stderr[-4000:]


# ------------------------------------------------------------------------------ secrets
def _pem_needles(label: str, pem: bytes) -> dict[str, bytes]:
    """Pieces of a private key any copy of it contains: each base64 line of its PEM body, and a
    slice of the base64 of the whole PEM (how kubeconfigs embed keys as client-key-data)."""
    lines = [ln for ln in pem.splitlines() if ln and not ln.startswith(b"-----") and len(ln) >= 24]
    needles = {f"{label} (PEM line {i + 1})": ln for i, ln in enumerate(lines)}
    embedded = base64.b64encode(pem)
    needles[f"{label} (base64 of the PEM)"] = embedded[len(embedded) // 3 : len(embedded) // 3 + 40]
    return needles


def known_secrets(r: Run) -> dict[str, bytes]:
    """label -> bytes that must appear in no output: the password, the token (whole and its
    secret half), the encryption key, and every private key of the cluster and the testbed."""
    state = r.state_dir
    token = (state / "bootstrap-token").read_text().strip()
    assert re.fullmatch(r"[a-z0-9]{6}\.[a-z0-9]{16}", token), "no generated bootstrap token"
    found = {
        "the SSH and sudo password": r.tb.password().encode(),
        "the bootstrap token": token.encode(),
        "the bootstrap token secret": token.split(".")[1].encode(),
    }
    enc = yaml.safe_load((state / "encryption-config.yaml").read_text())
    for resource in enc["resources"]:
        for provider in resource["providers"]:
            for spec in provider.values():
                for key in (spec or {}).get("keys", []):
                    found[f"the encryption key {key['name']}"] = key["secret"].encode()
    keys = sorted(p for p in (state / "pki").rglob("*.key") if p.is_file())
    assert len(keys) >= 5, keys
    for path in keys:
        found.update(_pem_needles(str(path.relative_to(state)), path.read_bytes()))
    admin = yaml.safe_load((state / "admin.conf").read_text())
    for user in admin["users"]:
        if "client-key-data" in user["user"]:
            pem = base64.b64decode(user["user"]["client-key-data"])
            found.update(_pem_needles(f"admin.conf key of {user['name']}", pem))
    found.update(_pem_needles("the testbed SSH key", r.tb.key_path.read_bytes()))
    return found


def scan(text: bytes, secrets: dict[str, bytes]) -> list[str]:
    return [label for label, needle in secrets.items() if needle in text]


# ------------------------------------------------------------------------------ the runs
STATE: dict[str, dict[str, bytes]] = {}


class TestSecrets:
    def test_deploy(self, run: Run) -> None:
        proc = run.eggo("deploy", "deploy", str(run.config), "--report", run.report("deploy"))
        assert proc.returncode == 0, _ok(proc)
        STATE["secrets"] = known_secrets(run)

    def test_dry_run_diffs_over_drifted_secret_files(self, run: Run) -> None:
        """Drift a key, a kubeconfig with an embedded key, the worker's token kubeconfig and one
        plain file: the dry-run shows the plain diff and only the names of the secret files."""
        master, worker = run.tb.with_role("master")[0], run.tb.with_role("worker")[0]
        drifted = {
            master.name: [
                "/etc/kubernetes/pki/apiserver-kubelet-client.key",
                "/etc/kubernetes/scheduler.conf",
            ],
            worker.name: ["/etc/kubernetes/bootstrap-kubelet.conf", "/etc/sysctl.d/99-kubernetes.conf"],
        }
        for machine, paths in drifted.items():
            for path in paths:
                assert run.tb.run(machine, f"echo '# drift' >> {path}").rc == 0
        proc = run.eggo("dry-run", "deploy", str(run.config), "--dry-run")
        assert proc.returncode == 0, _ok(proc)
        assert "-# drift" in proc.stdout, proc.stdout[-4000:]  # the plain file's diff is shown
        for paths in drifted.values():
            assert all(p in proc.stdout for p in paths), proc.stdout[-4000:]
        proc = run.eggo("repair", "deploy", str(run.config), "--report", run.report("repair"))
        assert proc.returncode == 0, _ok(proc)

    def test_day2_commands(self, run: Run) -> None:
        for label, args in (
            ("status", ["status", str(run.config), "--json"]),
            ("list", ["list", "--json"]),
            ("certs", ["certs", "check", str(run.config), "--json"]),
            ("backup", ["etcd", "backup", str(run.config), "--json"]),
        ):
            proc = run.eggo(label, *args)
            if label == "status":
                # status exits 1 for an unhealthy cluster; right after the repair deploy a
                # controller-manager may be between two starts. Either way it must report, and
                # its report is what this suite scans.
                assert proc.returncode in (0, 1) and json.loads(proc.stdout)["nodes"], _ok(proc)
                continue
            assert proc.returncode == 0, f"{label}: {_ok(proc)}"

    def test_a_hook_that_prints_secrets_and_fails(self, run: Run) -> None:
        """User code on the hosts may print anything; its stderr reaches the error text, the
        report and nornir.log, so the redaction must hold there too."""
        hook = run.tb.out_dir / "hooks" / "leaky.sh"
        hook.parent.mkdir()
        hook.write_text(
            "#!/bin/sh\n"
            "cat /etc/kubernetes/addons/*.yaml\n"
            "cat /etc/kubernetes/pki/sa.key /etc/kubernetes/encryption-config.yaml >&2\n"
            "grep -h token /etc/kubernetes/addons/*.yaml >&2\n"
            "exit 3\n"
        )
        hook.chmod(0o750)
        proc = run.eggo(
            "failing hook",
            "deploy",
            str(run.config),
            "--cluster-posthook",
            f"{hook},master",
            "--report",
            run.report("hook"),
        )
        assert proc.returncode == 1, _ok(proc)
        data = json.loads(Path(run.reports[-1]).read_text())
        errors = json.dumps(data["hosts"])
        assert "exit status 3" in errors, "the hook's failure is not in the report"
        # the token and the encryption key did get there, masked
        assert 'token-secret: \\"***\\"' in errors and "secret: ***" in errors, errors[-3000:]

    def test_an_unreachable_host(self, run: Run) -> None:
        doc = yaml.safe_load(run.config.read_text())
        doc["workers"].append({"name": "ghost", "ip": UNREACHABLE, "port": 22, "arch": "amd64"})
        path = run.tb.out_dir / "deploy-ghost.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        path.chmod(0o600)
        proc = run.eggo(
            "unreachable", "deploy", str(path), "--rollback", "--report", run.report("unreachable")
        )
        assert proc.returncode == 1, _ok(proc)
        assert "ghost" in proc.stderr + proc.stdout
        # --rollback (issue 12): the failed worker is removed as `delete` removes one and dropped
        # from the saved cluster; its own cleanup fails (nothing answers there) and says so
        rollback = json.loads(Path(run.reports[-1]).read_text())["rollback"]
        assert rollback["workers"] == ["ghost"] and rollback["dropped"], rollback
        assert rollback["run"]["failed_hosts"] == ["ghost"], rollback["run"]["failed_hosts"]
        assert "failed workers: ghost; dropped from the saved cluster" in proc.stdout, _ok(proc)
        saved = yaml.safe_load((run.state_dir / "deploy.yaml").read_text())
        assert [w["name"] for w in saved["workers"]] == [w["name"] for w in doc["workers"][:-1]]

    def test_cleanup(self, run: Run) -> None:
        proc = run.eggo(
            "cleanup", "cleanup", "-f", str(run.config), "--yes", "--report", run.report("cleanup")
        )
        assert proc.returncode == 0, _ok(proc)

    # -------------------------------------------------------------------------- the scan
    def test_no_output_holds_a_secret(self, run: Run) -> None:
        secrets = STATE["secrets"]
        leaks = {}
        for label, text in run.outputs:
            if found := scan(text.encode(), secrets):
                leaks[label] = found
        assert len(run.outputs) >= 18
        assert leaks == {}, json.dumps(leaks, indent=1)

    def test_no_report_run_record_or_state_file_holds_a_secret(self, run: Run) -> None:
        secrets = STATE["secrets"]
        state = run.state_dir
        files = [
            p
            for p in state.rglob("*")
            if p.is_file()
            and p.relative_to(state).parts[0] not in SKIPPED_DIRS
            and p.name not in SECRET_STORES
        ]
        files += [p for p in run.reports if p.is_file()]
        names = {p.name for p in files}
        assert {"nornir.log", "report.json", "deploy.yaml", "inspect.log", "admin.conf"} <= names, names
        assert len(list(state.glob("runs/*/nornir.log"))) >= 5
        not_keys = {k: v for k, v in secrets.items() if "PEM" not in k}
        leaks = {
            str(p): found
            for p in files
            if (found := scan(p.read_bytes(), not_keys if p.name in KEY_HOLDERS else secrets))
        }
        assert leaks == {}, json.dumps(leaks, indent=1)

    def test_no_journal_or_var_log_on_the_hosts_holds_the_password(self, run: Run) -> None:
        password = run.tb.password()
        for m in run.tb.machines:
            # fetched and searched here: a grep on the host would put the password on a command line
            for command in (
                "journalctl --no-pager -o cat",
                "find /var/log -type f -exec cat {} + 2>/dev/null",
            ):
                res = run.tb.run(m, command, timeout=120)
                assert res.stdout, f"{m.name}: nothing from {command!r}"
                assert password not in res.stdout, f"{m.name}: the password is in the output of {command!r}"
