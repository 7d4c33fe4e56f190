"""`eggo-nornir testbed up|down|status|bundle`: local machines and the offline bundle.

Why a command and not only a pytest fixture: the testbed is also the README's "try it
now" path, and colleagues need machines for SSH work outside of pytest. Output is a
short human summary or, with `--json`, machine-readable; the generated password is
never printed (only the path of its 0600 file).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from eggo_nornir.commands._common import add_parser
from eggo_nornir.errors import UsageError
from eggo_nornir.testbed import lifecycle, paths, spec


def _out(args: argparse.Namespace) -> Path:
    return Path(args.out) if args.out else paths.default_out_dir(args.name)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--name", default=lifecycle.DEFAULT_NAME, help="testbed name, 1-8 chars (default %(default)s)"
    )
    p.add_argument("--out", help="output dir (default: ~/.cache/eggo-nornir/testbed/NAME)")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_parser(
        subparsers,
        "testbed",
        "local systemd-nspawn machines and the offline bundle for trying and testing",
        "Local machines (systemd-nspawn containers with sshd on a private bridge) and the offline "
        "package bundle. Needs root.",
        "sudo eggo-nornir testbed up --name mytb --machines 3 && eggo-nornir deploy "
        "~/.cache/eggo-nornir/testbed/mytb/deploy.yaml",
    )
    sub = parser.add_subparsers(dest="testbed_command", metavar="ACTION")
    sub.required = True

    p_up = sub.add_parser("up", help="create and boot the machines, write deploy.yaml")
    _common(p_up)
    p_up.add_argument("--machines", type=int, default=lifecycle.DEFAULT_MACHINES, help="default %(default)s")
    p_up.add_argument("--subnet", default=lifecycle.DEFAULT_SUBNET, help="default %(default)s")
    p_up.add_argument("--bridge", help="bridge name (default NAMEbr0)")
    p_up.add_argument("--boot-timeout", type=float, default=180.0, help="seconds (default %(default)s)")
    p_up.add_argument("--bundle", help="bundle tarball deploy.yaml points at (default: the cached bundle)")
    p_up.add_argument(
        "--arm64", default="", metavar="NAMES", help="comma list of machines to boot as arm64 (qemu-user)"
    )
    p_up.add_argument(
        "--rpm", default="", metavar="NAMES", help="comma list of machines with rpm and dnf only"
    )
    p_up.add_argument(
        "--lb",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a load-balancer machine (the last one); default: with 6 machines or more",
    )
    p_up.set_defaults(func=cmd_up)

    p_down = sub.add_parser("down", help="stop the machines and remove everything up created")
    _common(p_down)
    p_down.add_argument(
        "--timeout", type=float, default=20.0, help="SIGTERM grace in seconds (default %(default)s)"
    )
    p_down.set_defaults(func=cmd_down)

    p_status = sub.add_parser("status", help="show the machines and whether they answer")
    _common(p_status)
    p_status.set_defaults(func=cmd_status)

    p_bundle = sub.add_parser("bundle", help="build packages-ARCH.tar.gz (debs, binaries, images)")
    p_bundle.add_argument("--arch", default="amd64", choices=("amd64", "arm64"))
    p_bundle.add_argument(
        "--format", default="deb", choices=("deb", "rpm"), help="package family of pkg/ (default %(default)s)"
    )
    p_bundle.add_argument(
        "--layout",
        default="typed",
        choices=("typed", "manual"),
        help="typed: pkg/ bin/ image/ file/ (upstream, default); manual: everything at the top, "
        "images.tar, addons/ (the operator manual)",
    )
    p_bundle.add_argument(
        "--addons",
        action="store_true",
        help="also the flannel CNI addon (manifest and image) and the CoreDNS image for pod DNS",
    )
    p_bundle.add_argument("--out", help="output dir (default: ~/.cache/eggo-nornir/bundle)")
    p_bundle.add_argument(
        "--kubernetes-version",
        metavar="vX.Y.Z",
        help="another Kubernetes version (its own file, packages-vX.Y.Z-ARCH.tar.gz; default: "
        "the pinned one, packages-ARCH.tar.gz)",
    )
    p_bundle.add_argument("--etcd-version", metavar="vX.Y.Z", help="default: what that minor ships with")
    p_bundle.add_argument("--coredns-version", metavar="vX.Y.Z", help="default: what that minor ships with")
    p_bundle.set_defaults(func=cmd_bundle)


def _print_machines(machines: list[dict[str, Any]]) -> None:
    print(f"{'NAME':<10} {'IP':<15} {'ROLES':<18} {'ARCH':<6} {'PKG':<4} {'RUNNING':<8} {'SSH':<5} SYSTEM")
    for m in machines:
        running = "yes" if m.get("running") else "no"
        reachable = "yes" if m.get("ssh") else "no"
        print(
            f"{m['name']:<10} {m['ip']:<15} {','.join(m['roles']):<18} {m.get('arch', '-'):<6} "
            f"{m.get('family', '-'):<4} {running:<8} {reachable:<5} {m.get('system') or '-'}"
        )


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def cmd_up(args: argparse.Namespace) -> int:
    out = _out(args)
    state = lifecycle.up(
        out,
        name=args.name,
        machines=args.machines,
        subnet=args.subnet,
        bridge=args.bridge,
        boot_timeout=args.boot_timeout,
        bundle=Path(args.bundle).resolve() if args.bundle else None,
        arm64=_names(args.arm64),
        rpm=_names(args.rpm),
        lb=args.lb,
    )
    info = lifecycle.status(out)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    _print_machines(info["machines"])
    t = state.timings
    print(
        f"\nup in {t['total_seconds']:.1f}s (rootfs {t['rootfs_seconds']:.1f}s "
        f"{'cached' if t['rootfs_cached'] else 'built'}, prepare {t['prepare_seconds']:.1f}s, "
        f"boot {t['boot_seconds']:.1f}s)"
    )
    print(f"deploy.yaml:  {out / 'deploy.yaml'}")
    print(
        f"ssh key:      {out / 'id_ed25519'}  (users root, eggo [sudo NOPASSWD], eggopw [sudo with password])"
    )
    print(f"password:     {out / 'password'}  (0600; for password auth and eggopw's sudo)")
    print(f"known_hosts:  {out / 'known_hosts'}")
    first = state.machines[0]
    kh = out / "known_hosts"
    print(f"try:          ssh -i {out / 'id_ed25519'} -o UserKnownHostsFile={kh} eggo@{first.ip}")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    result = lifecycle.down(_out(args), timeout=args.timeout)
    if args.json:
        print(json.dumps(result, indent=2))
    elif result["status"] == "absent":
        print(f"no testbed in {result['out_dir']}")
    else:
        print(f"testbed down: {', '.join(f'{k} {v}' for k, v in result['machines'].items())}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    info = lifecycle.status(_out(args))
    if args.json:
        print(json.dumps(info, indent=2))
    elif info["status"] == "absent":
        print(f"no testbed in {info['out_dir']}")
    else:
        print(f"testbed {info['name']}: {info['status']} (bridge {info['bridge']}, subnet {info['subnet']})")
        _print_machines(info["machines"])
    return 0 if info["status"] in ("up", "absent") else 1


def cmd_bundle(args: argparse.Namespace) -> int:
    from eggo_nornir.testbed import bundle  # heavy imports only when building

    out = Path(args.out) if args.out else paths.default_bundle_dir()
    try:
        versions = spec.versions_for(
            args.kubernetes_version or spec.KUBE_VERSION, args.etcd_version, args.coredns_version
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    result = bundle.build(
        args.arch, out, versions, family=args.format, layout=args.layout, addons=args.addons
    )
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"bundle: {result['tarball']} ({result['size_bytes'] / 1e6:.0f} MB, {result['seconds']:.1f}s, "
            f"{'reused' if result['cached'] else 'built'})"
        )
        print(f"sha256: {result['sha256']}")
    return 0
