"""The fan-out's host scripts: rendered text, and run for real on loopback with every server and fetcher."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from eggo_nornir.tasks._lib import fanout_scripts as fs

SHA = "a" * 64


def sh(script: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=timeout)


def test_tools_are_parsed_and_ranked() -> None:
    tools = fs.parse_tools(["sha=x", "tool=perl", "tool=wget", "tool=bogus", "tarball=yes"])
    assert tools == {"perl", "wget"}
    assert fs.serve_tool(tools) == "perl" and fs.fetch_tool(tools) == "wget"
    assert fs.serve_tool({"python3", "perl"}) == "perl"  # starts in milliseconds
    assert fs.fetch_tool({"python3", "curl", "perl"}) == "curl"
    assert fs.serve_tool({"curl", "wget"}) is None and fs.fetch_tool(set()) is None


def test_tool_probe_checks_modules_not_only_binaries() -> None:
    probe = fs.tool_probe()
    assert "http.server" in probe and "find_spec" in probe and "-MIO::Socket::INET" in probe
    assert all(f"echo tool={t}" in probe for t in ("python3", "perl", "curl", "wget"))


@pytest.mark.parametrize(
    ("have", "found"),
    [
        (("perl", "curl", "python3"), {"perl", "curl"}),  # python3 not even asked
        (("curl", "python3"), {"curl", "python3"}),  # no perl: python3 may serve
        (("perl", "python3"), {"perl", "python3"}),  # no curl or wget: python3 may fetch
        ((), set()),
    ],
)
def test_tool_probe_asks_python3_only_when_needed(
    tmp_path: Path, have: tuple[str, ...], found: set[str]
) -> None:
    for tool in have:
        # the interpreter itself, not a version manager's shim that needs its own PATH
        real = os.path.realpath(sys.executable) if tool == "python3" else shutil.which(tool)
        if real is None:
            pytest.skip(f"{tool} is not installed here")
        (tmp_path / tool).symlink_to(real)
    proc = subprocess.run(
        ["/bin/bash", "-c", fs.tool_probe()], env={"PATH": str(tmp_path)}, capture_output=True, text=True
    )
    assert fs.parse_tools(proc.stdout.splitlines()) == found


@pytest.mark.parametrize(
    ("tool", "expect"),
    [
        ("curl", ["curl", "-fsS", "--noproxy", "*"]),
        ("wget", ["wget", "-q", "--no-proxy"]),
        ("python3", ["python3", "-c"]),
        ("perl", ["perl", "-e"]),
    ],
)
def test_fetchers_ignore_proxies(tool: str, expect: list[str]) -> None:
    argv = fs.fetch_argv(tool, ip="10.0.0.2", port=8000, path="/t/f", out="f.tmp", timeout=30)
    assert argv[: len(expect)] == expect
    if tool == "python3":
        assert "ProxyHandler({})" in argv[2]


def test_ipv6_urls_are_bracketed() -> None:
    argv = fs.fetch_argv("curl", ip="fd00::2", port=80, path="/t/f", out="o", timeout=5)
    assert argv[-1] == "http://[fd00::2]:80/t/f"


def test_unknown_tools_are_refused() -> None:
    with pytest.raises(ValueError):
        fs.fetch_argv("nc", ip="10.0.0.2", port=1, path="/", out="o", timeout=1)
    with pytest.raises(ValueError):
        fs.serve_script("nc", ip="10.0.0.2", token="t", directory="/d", name="f", lifetime=9)


def test_receive_verifies_before_the_atomic_rename() -> None:
    script = fs.receive_script(
        "curl", ip="10.0.0.2", port=8000, token="tok", directory="/root/.eggo/package",
        name="b.tar.gz", sha256=SHA, timeout=60,
    )  # fmt: skip
    lines = script.splitlines()
    fetch = next(i for i, line in enumerate(lines) if line.startswith("curl "))
    check = next(i for i, line in enumerate(lines) if "sha256sum" in line)
    rename = next(i for i, line in enumerate(lines) if line.startswith("chmod 0600"))
    assert fetch < check < rename
    assert "-o b.tar.gz.eggo-fetch-tok" in lines[fetch]
    assert "mv -f -- b.tar.gz.eggo-fetch-tok b.tar.gz" in lines[rename]
    assert "trap 'rm -f -- b.tar.gz.eggo-fetch-tok' EXIT" in script


def test_serve_binds_the_given_address_and_opens_the_firewall_only_at_runtime() -> None:
    script = fs.serve_script(
        "python3", ip="10.0.0.2", token="tok", directory="/d", name="b.tar.gz", lifetime=600,
        zone="internal",
    )  # fmt: skip
    assert "10.0.0.2 0 /tok/b.tar.gz /d/b.tar.gz 600" in script
    assert '--zone=internal --add-port="$port/tcp" --timeout=600s' in script
    assert "--permanent" not in script
    stop = fs.stop_script("tok", zone="internal")
    assert "--zone=internal --remove-port" in stop and "/proc/$pid/cmdline" in stop


# -- for real, on loopback ---------------------------------------------------------------------


def _have(tool: str) -> bool:
    check = {"python3": "python3 -c 'import http.server'", "perl": "perl -MIO::Socket::INET -e 1"}
    return shutil.which(tool) is not None and sh(check.get(tool, "true")).returncode == 0


@pytest.fixture(scope="module", params=["python3", "perl"])
def served(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """A server of `request.param` for a 3 MB file on 127.0.0.1, shared by the module; stopped after."""
    tool = request.param
    if not _have(tool):
        pytest.skip(f"{tool} is not installed here")
    tmp_path = tmp_path_factory.mktemp(f"served-{tool}")
    src = tmp_path / "src"
    src.mkdir()
    data = bytes(range(256)) * (3 * 4096)
    (src / "b.tar.gz").write_bytes(data)
    token = f"t{time.monotonic_ns()}"
    prefix = str(tmp_path / "state-")
    start = fs.serve_script(
        tool, ip="127.0.0.1", token=token, directory=str(src), name="b.tar.gz", lifetime=60,
        state_prefix=prefix,
    )  # fmt: skip
    proc = sh(start)
    assert proc.returncode == 0, proc.stderr
    port = int(proc.stdout.strip().removeprefix("port="))
    yield {"port": port, "token": token, "data": data, "tmp": tmp_path}
    assert sh(fs.stop_script(token, state_prefix=prefix)).returncode == 0
    assert not Path(fs.state_dir(token, prefix)).exists()


@pytest.mark.parametrize("fetcher", ["curl", "wget", "python3", "perl"])
def test_every_fetcher_gets_the_file_from_every_server(served, fetcher: str) -> None:  # type: ignore[no-untyped-def]
    if not _have(fetcher):
        pytest.skip(f"{fetcher} is not installed here")
    dst = served["tmp"] / f"dst-{fetcher}"
    sha = hashlib.sha256(served["data"]).hexdigest()
    script = fs.receive_script(
        fetcher, ip="127.0.0.1", port=served["port"], token=served["token"], directory=str(dst),
        name="b.tar.gz", sha256=sha, timeout=20,
    )  # fmt: skip
    proc = sh(script)
    assert proc.returncode == 0, proc.stderr
    assert (dst / "b.tar.gz").read_bytes() == served["data"]
    assert sorted(p.name for p in dst.iterdir()) == ["b.tar.gz"]


def test_a_wrong_digest_or_path_leaves_nothing_at_the_final_path(served) -> None:  # type: ignore[no-untyped-def]
    dst = served["tmp"] / "dst-bad"
    fetcher = next((t for t in fs.FETCH_TOOLS if _have(t)), None)
    assert fetcher is not None
    common = {"ip": "127.0.0.1", "port": served["port"], "directory": str(dst), "timeout": 20}
    bad_sha = fs.receive_script(fetcher, token=served["token"], name="b.tar.gz", sha256=SHA, **common)
    proc = sh(bad_sha)
    assert proc.returncode == 3 and "sha256 mismatch" in proc.stderr
    bad_token = fs.receive_script(fetcher, token="nope", name="b.tar.gz", sha256=SHA, **common)
    assert sh(bad_token).returncode != 0
    assert list(dst.iterdir()) == []


def test_a_server_that_cannot_bind_reports_why(tmp_path: Path) -> None:
    if not _have("python3"):
        pytest.skip("python3 is not installed here")
    (tmp_path / "f").write_bytes(b"x")
    script = fs.serve_script(
        "python3", ip="192.0.2.1", token="tok", directory=str(tmp_path), name="f", lifetime=5,
        state_prefix=str(tmp_path / "s-"),
    )  # fmt: skip
    proc = sh(script)
    assert proc.returncode == 4 and "server" in proc.stderr
