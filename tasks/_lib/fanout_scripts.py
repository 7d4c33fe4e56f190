"""The shell a peer fan-out runs on hosts: probe its tools, serve one file, fetch it, stop serving.

Why rendered here, as pure functions: the scripts are the whole contract with the hosts
(what runs, with which quoting, what is verified before a file lands at its final path),
so they are unit-tested as text and run for real against loopback, apart from the
coordinator that decides who runs them.

Why these tools: the hosts may be openEuler, CentOS, Ubuntu or Debian, and the bundle
phase runs before any package is installed, so only what a minimal install already has
can serve or fetch. python3 (its stdlib `http.server`, `urllib`) is on the RPM
distributions, whose package managers need it; `perl` with `IO::Socket::INET` is in
Debian's and Ubuntu's Essential `perl-base`, so the minimal Debian the testbed boots has it
even without python3 (and it is preferred for serving: it starts in milliseconds); curl and
wget fetch when present. One probe line per tool says what
a host has (`tool_probe`); a host without a server tool cannot seed, and one without a
fetch tool gets its bundle directly from the controller.

What keeps it safe: the server binds the host's own cluster address and an ephemeral
port, answers only `GET /<random token>/<name>` (404 for everything else), and exits by
itself after `lifetime` seconds even if the controller dies; the coordinator stops it
explicitly when the phase ends. Every fetcher ignores proxy settings, so traffic stays
on the cluster's network. A fetched file is written next to its final path, checked
against the sha256 the controller computed, and only then renamed over it, so a partial or
wrong download never sits at the final path. When firewalld runs, the port is opened in
the runtime configuration only, with firewalld's own `--timeout` as a second safety net,
and closed again on stop (only if we opened it).
"""

from __future__ import annotations

import ipaddress
import shlex
from collections.abc import Iterable

# perl first: it starts in milliseconds, and a server's start-up is on every wave's critical path
SERVE_TOOLS: tuple[str, ...] = ("perl", "python3")
FETCH_TOOLS: tuple[str, ...] = ("curl", "wget", "python3", "perl")
STATE_PREFIX = "/run/eggo-fanout-"
FETCH_SUFFIX = ".eggo-fetch-"

# A python3 or perl that lacks the modules (a stripped python3-minimal, say) is no tool.
_TOOL_CHECKS: dict[str, str] = {
    "python3": "python3 -c 'import importlib.util as u, sys; sys.exit(not all(u.find_spec(m) for m in "
    '("http.server", "socketserver", "urllib.request")))\' >/dev/null 2>&1',
    "perl": "perl -MIO::Socket::INET -e 1 >/dev/null 2>&1",
    "curl": "command -v curl >/dev/null 2>&1",
    "wget": "command -v wget >/dev/null 2>&1",
}

PY_SERVER = r"""
import http.server, os, socketserver, sys, threading
ip, url, path, life = sys.argv[1], sys.argv[3], sys.argv[4], float(sys.argv[5])
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path != url:
            self.send_error(404)
            return
        with open(path, "rb") as f:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(os.fstat(f.fileno()).st_size))
            self.end_headers()
            self.wfile.flush()
            self.connection.sendfile(f)
    def log_message(self, *args):
        pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    address_family = __import__("socket").AF_INET6 if ":" in ip else __import__("socket").AF_INET
s = S((ip, int(sys.argv[2])), H)
print(s.server_address[1], os.getpid(), flush=True)
threading.Timer(life, s.shutdown).start()
s.serve_forever()
"""

PERL_SERVER = r"""
use strict; use IO::Socket::INET;
my ($ip, $port, $url, $path, $life) = @ARGV;
my $s = IO::Socket::INET->new(LocalAddr => $ip, LocalPort => $port, Listen => 64, ReuseAddr => 1,
    Proto => 'tcp') or die "listen on $ip: $!\n";
$| = 1; print $s->sockport, " $$\n";
$SIG{CHLD} = 'IGNORE'; $SIG{ALRM} = sub { exit 0 }; alarm $life;
while (1) {
    my $c = $s->accept or next;
    my $pid = fork; if (!defined $pid || $pid) { close $c; next; }
    alarm $life; close $s;
    my $req = <$c> // ''; while (defined(my $l = <$c>)) { last if $l =~ /^\r?\n$/; }
    my ($m, $p) = split / /, $req;
    my $f;
    if (($m // '') ne 'GET' || ($p // '') ne $url || !open($f, '<:raw', $path)) {
        print $c "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n"; exit 0;
    }
    binmode $c; $c->autoflush(1); my $n = -s $f;
    print $c "HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: $n\r\n\r\n";
    my $b; while (my $r = sysread($f, $b, 1 << 20)) {
        my $o = 0;
        while ($o < $r) { my $w = syswrite($c, $b, $r - $o, $o); exit 1 unless defined $w; $o += $w; }
    }
    exit 0;
}
"""

PY_FETCH = (
    "import shutil, sys, urllib.request; "
    "o = urllib.request.build_opener(urllib.request.ProxyHandler({})); "
    "r = o.open(sys.argv[1], timeout=float(sys.argv[3])); "
    "f = open(sys.argv[2], 'wb'); shutil.copyfileobj(r, f, 1 << 20); f.close()"
)

PERL_FETCH = r"""
use strict; use IO::Socket::INET;
my ($host, $port, $path, $out, $t) = @ARGV;
my $s = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port, Proto => 'tcp', Timeout => $t)
    or die "connect $host:$port: $!\n";
print $s "GET $path HTTP/1.0\r\nHost: $host\r\n\r\n";
my $st = <$s> // ''; $st =~ m{^HTTP/\S+ 200 } or die "HTTP status: $st\n";
while (defined(my $l = <$s>)) { last if $l =~ /^\r?\n$/; }
open(my $o, '>:raw', $out) or die "$out: $!\n"; binmode $s;
my $b; while (my $r = read($s, $b, 1 << 20)) { print $o $b or die "write: $!\n"; }
close $o or die "close: $!\n";
"""


def tool_probe() -> str:
    """Shell printing `tool=NAME` for each serve/fetch tool the host has (read-only, one line each).

    python3 is asked last, and only when perl or both curl and wget are missing: its start-up
    with the modules costs a tenth of a second of CPU on every host, the others almost nothing.
    """
    cheap = [t for t in dict.fromkeys((*SERVE_TOOLS, *FETCH_TOOLS)) if t != "python3"]
    lines = [f"{_TOOL_CHECKS[t]} && echo tool={t} && h_{t}=1" for t in cheap]
    lines.append(
        'if [ -z "$h_perl" ] || [ -z "$h_curl$h_wget" ]; then '
        f"{_TOOL_CHECKS['python3']} && echo tool=python3; fi"
    )
    return "; ".join(f"{{ {line}; }}" for line in lines)


def parse_tools(lines: Iterable[str]) -> frozenset[str]:
    """The tools a probe reported (`tool=NAME` lines); unknown names are ignored."""
    known = set(SERVE_TOOLS) | set(FETCH_TOOLS)
    return frozenset(t for line in lines if line.startswith("tool=") and (t := line[5:].strip()) in known)


def serve_tool(tools: Iterable[str]) -> str | None:
    """The first server the host has, in order of preference, or None."""
    have = set(tools)
    return next((t for t in SERVE_TOOLS if t in have), None)


def fetch_tool(tools: Iterable[str]) -> str | None:
    """The first fetcher the host has, in order of preference, or None."""
    have = set(tools)
    return next((t for t in FETCH_TOOLS if t in have), None)


def url_host(ip: str) -> str:
    """The address as a URL host part: IPv6 in brackets."""
    return f"[{ip}]" if ipaddress.ip_address(ip).version == 6 else ip


def url_path(token: str, name: str) -> str:
    """The only path a server answers: a random token, then the file's name."""
    return f"/{token}/{name}"


def state_dir(token: str, prefix: str = STATE_PREFIX) -> str:
    """Where a server keeps its port, pid, log and firewall note on its host (tmpfs, root only)."""
    return f"{prefix}{token}"


def _firewall_open(zone: str | None, lifetime: int) -> str:
    z = f" --zone={shlex.quote(zone)}" if zone else ""
    return (
        'if [ "$(systemctl is-active firewalld 2>/dev/null)" = active ] && '
        f'! firewall-cmd -q{z} --query-port="$port/tcp"; then '
        f'firewall-cmd -q{z} --add-port="$port/tcp" --timeout={lifetime}s && '
        'printf "%s/tcp\\n" "$port" > "$d/fw"; fi'
    )


def serve_script(
    tool: str,
    *,
    ip: str,
    token: str,
    directory: str,
    name: str,
    lifetime: int,
    port: int = 0,
    zone: str | None = None,
    state_prefix: str = STATE_PREFIX,
) -> str:
    """Start a detached server for `<directory>/<name>`; print `port=N` once it listens.

    The file is not re-hashed here: every receiver checks what it gets against the
    controller's sha256, so a bad copy costs a fallback, never a bad install. The server's
    stdout (port and pid) and stderr go to files in its state dir, so the SSH command
    returns at once; `setsid` keeps it alive after the session closes. rc 4: the server did
    not come up (the end of its log is printed).
    """
    if tool == "python3":
        argv = ["python3", "-c", PY_SERVER]
    elif tool == "perl":
        argv = ["perl", "-e", PERL_SERVER]
    else:
        raise ValueError(f"no server for tool {tool!r}; have {SERVE_TOOLS}")
    argv += [ip, str(port), url_path(token, name), f"{directory}/{name}", str(lifetime)]
    d = shlex.quote(state_dir(token, state_prefix))
    lines = [
        "set -e",
        f'd={d}; mkdir -m 0700 "$d"',
        # a background job of a non-interactive shell is no group leader, so setsid does not
        # fork and $! is the server itself
        f'setsid {" ".join(shlex.quote(a) for a in argv)} </dev/null >"$d/port" 2>"$d/log" & spid=$!',
        'i=0; while [ ! -s "$d/port" ]; do i=$((i+1)); '
        'if ! kill -0 "$spid" 2>/dev/null && [ ! -s "$d/port" ] || [ $i -gt 150 ]; then '
        'echo "server did not start: $(tail -c 400 "$d/log")" >&2; exit 4; fi; '
        "sleep 0.1; done",
        'sleep 0.05; read -r port pid < "$d/port"',
        'if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then '
        'echo "server exited: $(tail -c 400 "$d/log")" >&2; exit 4; fi',
        _firewall_open(zone, lifetime),
        'printf "port=%s\\n" "$port"',
    ]
    return "\n".join(lines)


def stop_script(token: str, zone: str | None = None, state_prefix: str = STATE_PREFIX) -> str:
    """Stop the server of `token` (only if its pid is still our server) and close its firewall port.

    Best effort and idempotent: a server that already exited, or a state dir that is gone,
    is fine. The pid is checked against the token in its command line, so a pid reused by
    another process is never signalled.
    """
    d = shlex.quote(state_dir(token, state_prefix))
    z = f" --zone={shlex.quote(zone)}" if zone else ""
    return "\n".join(
        [
            f"d={d}",
            '[ -d "$d" ] || exit 0',
            'read -r port pid < "$d/port" 2>/dev/null || pid=""',
            f'if [ -n "$pid" ] && grep -qa -- {shlex.quote(token)} "/proc/$pid/cmdline" 2>/dev/null; then '
            'kill "$pid" 2>/dev/null || true; fi',
            f'if [ -s "$d/fw" ]; then firewall-cmd -q{z} --remove-port="$(cat "$d/fw")" || true; fi',
            'rm -rf -- "$d"',
        ]
    )


def fetch_argv(tool: str, *, ip: str, port: int, path: str, out: str, timeout: int) -> list[str]:
    """The command that downloads `http://ip:port<path>` into `out`, proxies ignored."""
    url = f"http://{url_host(ip)}:{port}{path}"
    if tool == "curl":
        return ["curl", "-fsS", "--noproxy", "*", "--connect-timeout", "10", "--max-time", str(timeout),
                "-o", out, url]  # fmt: skip
    if tool == "wget":
        return ["wget", "-q", "--no-proxy", "-T", str(timeout), "-O", out, url]
    if tool == "python3":
        return ["python3", "-c", PY_FETCH, url, out, str(timeout)]
    if tool == "perl":
        return ["perl", "-e", PERL_FETCH, ip, str(port), path, out, str(timeout)]
    raise ValueError(f"no fetcher for tool {tool!r}; have {FETCH_TOOLS}")


def receive_script(
    tool: str,
    *,
    ip: str,
    port: int,
    token: str,
    directory: str,
    name: str,
    sha256: str,
    timeout: int,
) -> str:
    """Fetch `<name>` from a peer into `<directory>`, verify its sha256, then rename it into place.

    The download goes to `<name>.eggo-fetch-<token>` in the same dir (so the rename is
    atomic) and is removed on any failure; rc 3 on a sha256 mismatch.
    """
    d = shlex.quote(directory)
    tmp = f"{name}{FETCH_SUFFIX}{token}"
    qtmp, qname = shlex.quote(tmp), shlex.quote(name)
    fetch = " ".join(
        shlex.quote(a)
        for a in fetch_argv(tool, ip=ip, port=port, path=url_path(token, name), out=tmp, timeout=timeout)
    )
    return "\n".join(
        [
            "set -e",
            f"install -d -m 0700 -- {d}; cd {d}",
            f"trap 'rm -f -- {qtmp}' EXIT",
            f"rm -f -- {qtmp}",
            fetch,
            f'got=$(sha256sum < {qtmp} | cut -c1-64); if [ "$got" != {sha256} ]; then '
            f'echo "sha256 mismatch after fetch: got $got, want {sha256}" >&2; exit 3; fi',
            f"chmod 0600 -- {qtmp}; mv -f -- {qtmp} {qname}",
            "trap - EXIT",
        ]
    )
