"""install_packages / import_images: plan from facts, one action, records for cleanup, idempotent."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest
from task_fakes import fake_nornir, make_ctx

from eggo_nornir.config.model import Package, PackageSource
from eggo_nornir.remote.fake import FakeCall, FakeRemote
from eggo_nornir.tasks.packages import (
    PACKAGES_LIST,
    Facts,
    PackageError,
    PkgFile,
    action_script,
    check_dst,
    import_images,
    install_packages,
    normalise_ref,
    parse_probe,
    plan,
    probe_script,
    refs_in_archive,
)

DST = "/root/.eggo/package"
WORKER_PKGS = (
    Package("kubelet", "bin", "worker", "kubernetes-worker", dst="/usr/bin"),
    Package("containerd", "pkg", "worker", "container"),
    Package("runc", "pkg", "worker", "container"),
    Package("socat", "repo", "worker", "kubernetes-worker"),
    Package("10-x.conflist", "file", "worker", "addition", dst="/etc/cni/net.d"),
    Package("pause.tar", "image", "worker", "image"),
    Package("hook.sh", "shell", "worker", "addition", schedule="prejoin"),
)
LB_PKGS = (Package("nginx", "pkg", "loadbalance", "loadbalance"),)


def test_plan_installs_only_what_is_missing_in_config_order() -> None:
    facts = Facts(
        mgr="dpkg",
        repo="apt-get",
        pkgfiles={
            1: [PkgFile("containerd_1.6.20_amd64.deb", "containerd", "1.6.20", "")],
            2: [PkgFile("runc_1.1.5_amd64.deb", "runc", "1.1.5", "1.1.5")],
        },
        installed={3: ""},
        copies={0: ("aa:755", "bb:755"), 4: ("cc:644", "cc:644")},
    )
    p = plan(WORKER_PKGS, facts, DST)
    assert [k for k, _ in p.steps] == ["copy", "pkg", "repo"]
    assert p.steps[1] == ("pkg", ["containerd_1.6.20_amd64.deb"])
    assert p.steps[2] == ("repo", ["socat"])
    assert p.new_packages == ["containerd", "socat"]
    assert "runc" in p.up_to_date and "/etc/cni/net.d/10-x.conflist" in p.up_to_date
    script = action_script(p, DST)
    assert script.count("dpkg -i") == 1 and "--force-all" not in script
    assert "apt-get install -y -- socat" in script
    assert f"printf '%s\\n' containerd >> {PACKAGES_LIST}" in script
    # records come before the install, so a half-failed install is still cleaned up
    assert script.index(PACKAGES_LIST) < script.index("dpkg -i")
    assert (
        "install -m 0755 -o root -g root /root/.eggo/package/bin/kubelet /usr/bin/.kubelet.eggo-tmp" in script
    )


def test_plan_upgrade_is_not_recorded_as_new() -> None:
    facts = Facts(mgr="dpkg", repo="none", pkgfiles={0: [PkgFile("runc_2_amd64.deb", "runc", "2", "1")]})
    p = plan([Package("runc", "pkg", "worker", "c")], facts, DST)
    assert p.steps == [("pkg", ["runc_2_amd64.deb"])] and p.new_packages == []


def test_plan_lists_every_problem() -> None:
    pkgs = [Package("nope", "pkg", "worker", "c"), Package("gone", "bin", "worker", "c", dst="/usr/bin")]
    with pytest.raises(PackageError) as err:
        plan(pkgs, Facts(mgr="dpkg", copies={1: ("-", "-")}), DST)
    assert "no .deb matching /root/.eggo/package/pkg/nope*" in str(err.value)
    assert "/root/.eggo/package/bin/gone is not in the unpacked bundle" in str(err.value)
    with pytest.raises(PackageError, match="neither dpkg nor rpm"):
        plan([Package("x", "pkg", "worker", "c")], Facts(), DST)


def test_dst_checked_again_before_writing() -> None:
    assert check_dst(Package("kubelet", "bin", "worker", "c", dst="/usr/bin")) == "/usr/bin/kubelet"
    for bad in ("/etc", "/usr/bin/../../etc"):
        with pytest.raises(PackageError, match="outside the allowed"):
            check_dst(Package("passwd", "file", "worker", "c", dst=bad))
    with pytest.raises(PackageError, match="outside the allowed"):
        check_dst(Package("../../etc/passwd", "file", "worker", "c", dst="/usr/bin"))


def test_rpm_and_dnf_commands() -> None:
    facts = Facts(
        mgr="rpm", repo="dnf", pkgfiles={0: [PkgFile("runc-1.rpm", "runc", "1-1", "")]}, installed={}
    )
    p = plan([Package("runc", "pkg", "worker", "c"), Package("socat", "repo", "worker", "c")], facts, DST)
    script = action_script(p, DST)
    # upstream's --force --nodeps (an rpm host's database does not describe its base system),
    # as an upgrade (-U) so a newer bundle replaces what is installed
    assert "rpm -Uvh --force --nodeps -- runc-1.rpm" in script and "dnf -y install -- socat" in script
    assert p.describe()[0] == "rpm -Uvh --force --nodeps runc-1.rpm"


def test_probe_picks_the_hosts_package_family() -> None:
    script = probe_script([Package("runc", "pkg", "worker", "c")], DST)
    assert 'ext=deb; [ "$m" = rpm ] && ext=rpm' in script and "*.$ext)" in script
    with pytest.raises(PackageError, match=r"no \.rpm matching"):
        plan([Package("runc", "pkg", "worker", "c")], Facts(mgr="rpm"), DST)


class SimPkgHost:
    """A host with dpkg and apt: answers the probe from state and applies the action."""

    def __init__(self, fake: FakeRemote, debs: dict[str, tuple[str, str, str]]) -> None:
        self.debs = debs  # file -> (package, version, pattern)
        self.installed: dict[str, str] = {}
        self.copied: dict[str, str] = {}
        self.compared = 0
        self.nginx = ("", "")
        self.actions: list[str] = []
        fake.on(re.compile(r"^m=none;"), handler=self.probe)
        fake.on(re.compile(r"^set -e\n"), handler=self.action)

    def probe(self, call: FakeCall, fake: FakeRemote) -> tuple[int, str, str]:
        out = ["mgr\tdpkg", "repo\tapt-get"]
        for line in call.command.splitlines():
            if m := re.search(r"for f in (\S+)\*; .* pkginfo (\d+)", line):
                for f, (n, v, _pat) in sorted(self.debs.items()):
                    if f.startswith(m.group(1).strip("'")):
                        out.append(f"pkgfile\t{m.group(2)}\t{f}\t{n}\t{v}\t{self.installed.get(n, '')}")
            elif m := re.search(r"printf 'installed\\t%s\\t%s\\n' (\d+) \"\$\(have (\S+)\)\"", line):
                out.append(f"installed\t{m.group(1)}\t{self.installed.get(m.group(2), '')}")
            elif m := re.search(
                r"printf 'copy\\t%s\\t%s\\t%s\\n' (\d+) \"\$\(digest (\S+)\)\" \"\$\(digest (\S+)\)\"", line
            ):
                out.append(f"copy\t{m.group(1)}\tsrc{m.group(2)}:755\t{self.copied.get(m.group(3), '-')}")
            elif m := re.search(r"printf 'copy\\t%s\\t%s\\n' (\d+) \"\$\(compare (\S+) (\S+)\)\"", line):
                # the probe's `compare`: cmp settles equal bytes, a missing target needs no hash
                have, src = self.copied.get(m.group(3)), f"src{m.group(2)}"
                if have is None:
                    out.append(f"copy\t{m.group(1)}\tpresent\t-")
                elif have.split(":")[0] == src:
                    out.append(f"copy\t{m.group(1)}\tsame\tsame:{have.split(':')[1]}")
                else:
                    out.append(f"copy\t{m.group(1)}\t{src}:755\t{have}")
                self.compared += 1
            elif "printf 'unit" in line:
                out.append(f"unit\tnginx.service\t{self.nginx[0]}\t{self.nginx[1]}")
        return 0, "\n".join(out) + "\n", ""

    def action(self, call: FakeCall, fake: FakeRemote) -> tuple[int, str, str]:
        self.actions.append(call.command)
        for line in call.command.splitlines():
            if "dpkg -i" in line:
                for f in line.split("--force-confold -- ", 1)[1].rstrip(")").split():
                    n, v, _pat = self.debs[f]
                    self.installed[n] = v
                    if n == "nginx":
                        self.nginx = ("enabled", "active")  # the distro package auto-starts it
            if m := re.search(r"apt-get install -y -- (.*)", line):
                self.installed.update({n: "1" for n in m.group(1).split()})
            if m := re.search(r"install -m (\d+) -o root -g root (\S+) \S+ && mv -f \S+ (\S+)", line):
                self.copied[m.group(3)] = f"src{m.group(2)}:{int(m.group(1), 8):o}"
            if "systemctl disable --now" in line:
                self.nginx = ("disabled", "inactive")
        return 0, "", ""


@pytest.fixture
def worker_setup(cluster, tmp_path):
    cfg = replace(cluster, packages=WORKER_PKGS + LB_PKGS)
    fake = FakeRemote(host="w0")
    sim = SimPkgHost(
        fake,
        {
            "containerd_1.6.20_amd64.deb": ("containerd", "1.6.20", "containerd"),
            "runc_1.1.5_amd64.deb": ("runc", "1.1.5", "runc"),
        },
    )
    sim.installed["runc"] = "1.1.5"  # already there: must not be recorded for removal
    nr = fake_nornir(cfg, w0=fake).filter(name="w0")
    return nr, make_ctx(cfg, tmp_path), fake, sim


def test_install_first_run_then_nothing(worker_setup) -> None:
    nr, ctx, _fake, sim = worker_setup
    res = nr.run(task=install_packages, ctx=ctx)["w0"][0]
    assert res.changed and not res.failed, res.exception
    assert sim.installed["containerd"] == "1.6.20" and sim.installed["socat"] == "1"
    assert sim.copied["/usr/bin/kubelet"] == f"src{DST}/bin/kubelet:755"
    assert res.result["new_packages"] == ["containerd", "socat"]
    assert len(sim.actions) == 1
    script = sim.actions[0]
    assert "/etc/cni/net.d/10-x.conflist" in script and "files.list" in script
    assert "pause.tar" not in script and "hook.sh" not in script  # images and hooks are not installed here
    res2 = nr.run(task=install_packages, ctx=ctx)["w0"][0]
    assert not res2.changed and len(sim.actions) == 1
    assert set(res2.result["up_to_date"]) >= {"containerd", "runc", "socat", "/usr/bin/kubelet"}


def test_install_dry_run_changes_nothing(worker_setup) -> None:
    nr, ctx, _fake, sim = worker_setup
    res = nr.run(task=install_packages, ctx=ctx, dry_run=True)["w0"][0]
    assert res.changed and "would dpkg -i containerd_1.6.20_amd64.deb" in res.diff
    assert "would apt-get install socat" in res.diff
    assert sim.actions == [] and "containerd" not in sim.installed


def test_lb_stops_the_distro_nginx(cluster, tmp_path) -> None:
    cfg = replace(cluster, packages=LB_PKGS)
    fake = FakeRemote(host="lb")
    sim = SimPkgHost(fake, {"nginx_1.22_amd64.deb": ("nginx", "1.22", "nginx")})
    nr = fake_nornir(cfg, lb=fake).filter(name="lb")
    res = nr.run(task=install_packages, ctx=make_ctx(cfg, tmp_path))["lb"][0]
    assert res.changed and sim.nginx == ("disabled", "inactive")
    assert "systemctl disable --now -q nginx.service" in sim.actions[0]
    assert not nr.run(task=install_packages, ctx=make_ctx(cfg, tmp_path))["lb"][0].changed
    sim.nginx = ("enabled", "active")  # an upgrade re-enabled it: stopped again
    assert nr.run(task=install_packages, ctx=make_ctx(cfg, tmp_path))["lb"][0].changed
    assert sim.nginx == ("disabled", "inactive")


def test_parse_probe_roundtrip() -> None:
    out = (
        "mgr\tdpkg\nrepo\tapt-get\npkgfile\t1\tf.deb\tf\t1\t\ninstalled\t3\t2.0\n"
        "copy\t0\ta:755\t-\nunit\tnginx.service\t\t\n"
    )
    f = parse_probe(out)
    assert (
        f.mgr == "dpkg"
        and f.pkgfiles[1][0].needed
        and f.installed == {3: "2.0"}
        and f.copies[0] == ("a:755", "-")
    )


# --------------------------------------------------------------------------- images


def test_image_refs() -> None:
    assert normalise_ref("busybox:1.35") == "docker.io/library/busybox:1.35"
    assert normalise_ref("me/app") == "docker.io/me/app:latest"
    assert normalise_ref("registry.k8s.io/pause:3.10") == "registry.k8s.io/pause:3.10"
    assert normalise_ref("localhost:5000/x:1") == "localhost:5000/x:1"
    manifest = json.dumps([{"RepoTags": ["registry.k8s.io/pause:3.10"]}])
    index = json.dumps(
        {"manifests": [{"annotations": {"io.containerd.image.name": "eggo.local/busybox:1.35"}}]}
    )
    assert refs_in_archive(manifest, index) == ["registry.k8s.io/pause:3.10", "eggo.local/busybox:1.35"]
    assert refs_in_archive("not json") == []


def test_import_images_skips_present(cluster, tmp_path) -> None:
    cfg = replace(cluster, packages=WORKER_PKGS, package_source=PackageSource(dstpath=DST))
    fake = FakeRemote(host="w0")
    have: list[str] = ["sha256:abc"]

    def probe(call: FakeCall, _fake: FakeRemote) -> tuple[int, str, str]:
        manifest = json.dumps([{"RepoTags": ["registry.k8s.io/pause:3.10"]}])
        return 0, "".join(f"have\t{h}\n" for h in have) + f"manifest\t0\t{manifest}\nindex\t0\t\n", ""

    def load(call: FakeCall, _fake: FakeRemote) -> tuple[int, str, str]:
        have.append("registry.k8s.io/pause:3.10")
        return 0, "", ""

    fake.on(re.compile(r"^ctr -n k8s.io images ls -q"), handler=probe)
    fake.on(re.compile(r"^ctr -n k8s.io images import --platform linux/amd64 "), handler=load)
    nr = fake_nornir(cfg, w0=fake).filter(name="w0")
    ctx = make_ctx(cfg, tmp_path)
    dry = nr.run(task=import_images, ctx=ctx, dry_run=True)["w0"][0]
    assert dry.changed and "would import /root/.eggo/package/image/pause.tar" in dry.diff and len(have) == 1
    res = nr.run(task=import_images, ctx=ctx)["w0"][0]
    assert res.changed and res.result["imported"] == [f"{DST}/image/pause.tar"]
    res2 = nr.run(task=import_images, ctx=ctx)["w0"][0]
    assert not res2.changed and res2.result["present"] == [f"{DST}/image/pause.tar"]


# --------------------------------------------------------------------------- copies: cmp before hashes


def test_copy_up_to_date_reads_every_probe_answer() -> None:
    from eggo_nornir.tasks.packages import copy_up_to_date

    assert copy_up_to_date("bin", "same", "same:755", 0o755)
    assert not copy_up_to_date("bin", "same", "same:644", 0o755)  # right bytes, wrong mode: copy again
    assert not copy_up_to_date("bin", "present", "-", 0o755)  # missing target
    assert copy_up_to_date("file", "ab:600", "ab:644", 0o644)  # hashes (no cmp on the host)
    assert not copy_up_to_date("file", "ab:644", "cd:644", 0o644)
    assert copy_up_to_date("dir", "dir:x", "dir:x", 0o644) and not copy_up_to_date("dir", "dir:x", "-", 0o644)


def test_copy_probe_in_a_real_shell(tmp_path, monkeypatch) -> None:
    """`compare` on real files: equal bytes need no hash, a missing target none either."""
    import os
    import subprocess

    from eggo_nornir.tasks import packages

    monkeypatch.setattr(packages, "dst_allowed", lambda _p: True)  # /tmp is not a real destination
    monkeypatch.setattr(packages, "dst_dir_allowed", lambda _p: True)

    dst = tmp_path / "pkgs"
    (dst / "bin").mkdir(parents=True)
    target_dir = tmp_path / "usr-bin"
    target_dir.mkdir()
    for name in ("same", "other", "fresh", "moded"):
        (dst / "bin" / name).write_bytes(b"ELF" + name.encode())
    (target_dir / "same").write_bytes(b"ELFsame")
    (target_dir / "other").write_bytes(b"ELFold")
    (target_dir / "moded").write_bytes(b"ELFmoded")
    for name in ("same", "other"):
        os.chmod(target_dir / name, 0o755)
    os.chmod(target_dir / "moded", 0o644)
    pkgs = [
        Package(n, "bin", "worker", "c", dst=str(target_dir)) for n in ("same", "other", "fresh", "moded")
    ]

    out = subprocess.run(
        ["sh", "-c", probe_script(pkgs, str(dst))], capture_output=True, text=True, check=True
    ).stdout
    facts = parse_probe(out)
    assert facts.copies[0] == ("same", "same:755")
    assert facts.copies[1][0].endswith(":644") and len(facts.copies[1][1]) == 64 + 4  # hashed: bytes differ
    assert facts.copies[2] == ("present", "-")
    assert facts.copies[3] == ("same", "same:644")
    p = plan(pkgs, facts, str(dst))
    assert [c.target for _k, c in p.steps] == [str(target_dir / n) for n in ("other", "fresh", "moded")]
    assert p.up_to_date == [str(target_dir / "same")]


def test_rerun_compares_without_hashing(worker_setup) -> None:
    nr, ctx, fake, sim = worker_setup
    nr.run(task=install_packages, ctx=ctx)
    res = nr.run(task=install_packages, ctx=ctx)["w0"][0]
    assert not res.changed and sim.compared == 4  # kubelet and the conflist, on both runs
    copy_lines = [line for line in fake.commands[-1].splitlines() if line.startswith("printf 'copy")]
    assert len(copy_lines) == 2 and all("$(compare " in line for line in copy_lines)
