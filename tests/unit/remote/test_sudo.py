"""Command wrapping for env and sudo, and redaction: the place a password could leak."""

from __future__ import annotations

import shlex
import subprocess

import pytest

from eggo_nornir.remote.sudo import Wrapped, redact, sudo_hint, to_shell, wrap_command


def test_root_runs_the_command_as_written() -> None:
    w = wrap_command("echo hi && id", username="root", sudo=True, has_sudo_password=False)
    assert w == Wrapped("echo hi && id", display="echo hi && id")


def test_list_is_an_argv_quoted_safely() -> None:
    assert to_shell(["echo", "a b", "$HOME", "it's"]) == "echo 'a b' '$HOME' 'it'\"'\"'s'"


def test_env_is_prefixed_quoted_and_covers_the_whole_shell_text() -> None:
    w = wrap_command("a && b", username="root", sudo=True, has_sudo_password=False, env={"K": "v w'x"})
    assert w.command == "env 'K=v w'\"'\"'x' sh -c 'a && b'"
    out = subprocess.run(
        ["sh", "-c", wrap_command('printf %s "$K"', username="root", sudo=False, has_sudo_password=False,
                                  env={"K": "v w'x $HOME"}).command],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert out == "v w'x $HOME"


def test_bad_env_name_is_refused() -> None:
    with pytest.raises(ValueError, match="invalid environment variable"):
        wrap_command("true", username="root", sudo=False, has_sudo_password=False, env={"A B; rm": "x"})


def test_passwordless_sudo_uses_n_and_a_started_marker() -> None:
    w = wrap_command("id -u", username="eggo", sudo=True, has_sudo_password=False, nonce="abc")
    assert w.command.startswith("sudo -n -- sh -c ")
    assert w.prompt is None and w.started == "__eggo_started_abc__"
    assert w.display == "sudo id -u"
    argv = shlex.split(w.command)
    assert argv[:5] == ["sudo", "-n", "--", "sh", "-c"]
    assert argv[5] == "printf '%s\\n' __eggo_started_abc__ >&2; id -u"


def test_password_sudo_reads_stdin_with_unique_prompt_and_no_password_in_command() -> None:
    w = wrap_command("id -u", username="eggopw", sudo=True, has_sudo_password=True, nonce="abc")
    argv = shlex.split(w.command)
    assert argv[:5] == ["sudo", "-S", "-p", "[eggo-sudo-abc]", "--"]
    assert w.prompt == "[eggo-sudo-abc]"
    # the function never even sees the password: it only knows there is one
    assert "password" not in w.command.lower()


def test_sudo_env_goes_inside_sudo_so_env_reset_cannot_drop_it() -> None:
    w = wrap_command("x", username="eggo", sudo=True, has_sudo_password=False, env={"A": "1"}, nonce="n")
    assert shlex.split(w.command)[:6] == ["sudo", "-n", "--", "env", "A=1", "sh"]
    assert w.display == "sudo env A=1 x"


def test_sudo_false_runs_as_the_user() -> None:
    w = wrap_command("id", username="eggo", sudo=False, has_sudo_password=True)
    assert w == Wrapped("id", display="id")


def test_markers_run_in_a_real_shell_and_are_cleaned() -> None:
    w = wrap_command("echo out; echo err >&2", username="eggo", sudo=True, has_sudo_password=True)
    body = shlex.split(w.command)[-1]
    proc = subprocess.run(["sh", "-c", body], capture_output=True, check=True)
    assert proc.stdout == b"out\n"
    assert w.started is not None and w.started.encode() in proc.stderr
    noisy = (w.prompt or "").encode() + proc.stderr
    assert w.clean_stderr(noisy) == b"err\n"


@pytest.mark.parametrize(
    ("stderr", "rc", "needle"),
    [
        ("sudo: a password is required\n", 1, "NOPASSWD"),
        ("sudo: a terminal is required to read the password\n", 1, "NOPASSWD"),
        ("sudo-rs: interactive authentication is required\n", 1, "NOPASSWD"),
        ("Sorry, try again.\nsudo: 1 incorrect password attempt\n", 1, "rejected"),
        ("eggo is not in the sudoers file.\n", 1, "may not use sudo"),
        ("sh: 1: sudo: not found\n", 127, "not installed"),
        ("", 1, "before the command started"),
    ],
)
def test_sudo_hint(stderr: str, rc: int, needle: str) -> None:
    assert needle in sudo_hint(stderr, rc)


def test_redact_longest_first_and_ignores_empty() -> None:
    assert redact("pw pw2 x", ["pw", "pw2", None, ""]) == "*** *** x"
    assert redact("nothing", []) == "nothing"
