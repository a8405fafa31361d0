"""The deployment files agree with the code: what the daemon runs is in its container image,
what the agent runs is in its documented requirements, the unit's user exists, and every
file names the same agent token path (deploy/README.md)."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from reconciler.agent.__main__ import DEFAULTS as AGENT_DEFAULTS
from tests.conftest import ROOT

SOURCE = ROOT / "reconciler"
DEPLOY = ROOT / "deploy"
CONTAINERFILE = DEPLOY / "container" / "Containerfile"

#: Every command the daemon runs -> the Debian package that ships it. Checked against the
#: source and against dpkg below.
DAEMON_COMMANDS = {"gpg": "gpg", "ssh-keygen": "openssh-client"}
#: Programs those commands start themselves: gpg signs through gpg-agent.
STARTED_BY_THEM = {"gpg-agent": "gpg-agent"}
#: Every command the agent runs (docs/agent.md, "What it needs on the host").
AGENT_COMMANDS = {"rpm-ostree", "ostree", "systemctl"}
AGENT_TOKEN = "/etc/reconciler-agent/token"


def commands_in(files: list[Path]) -> set[str]:
    """Program names the source hands to a subprocess: the first item of an argv list
    literal (``["gpg", "--verify", ...]``), a ``command="ostree"`` default, and the
    first word of the agent's default ``reboot-command``."""
    found: set[str] = set()
    for file in files:
        for node in ast.walk(ast.parse(file.read_text(), str(file))):
            if isinstance(node, ast.List) and node.elts:
                first = node.elts[0]
                if (
                    isinstance(first, ast.Constant)
                    and isinstance(first.value, str)
                    and not first.value.startswith("-")  # a list of options, not an argv
                ):
                    found.add(first.value)
            if isinstance(node, ast.arguments):
                named = node.posonlyargs + node.args + node.kwonlyargs
                defaults = [*node.defaults, *node.kw_defaults]
                # Defaults belong to the last arguments (kw_defaults: None for none).
                with_defaults = named[len(named) - len(defaults) :]
                for argument, default in zip(with_defaults, defaults, strict=True):
                    if argument.arg == "command" and isinstance(default, ast.Constant):
                        found.add(str(default.value))
    return found


def daemon_modules() -> list[Path]:
    """The daemon's modules that start processes (the agent and the demo are not the daemon)."""
    return [
        file
        for file in SOURCE.rglob("*.py")
        if file.relative_to(SOURCE).parts[0] not in ("agent", "demo")
        and re.search(r"^import subprocess|^from subprocess ", file.read_text(), re.M)
    ]


def test_the_declared_daemon_commands_are_what_its_source_runs() -> None:
    modules = daemon_modules()
    assert {m.relative_to(ROOT).as_posix() for m in modules} == {
        "reconciler/git/signatures.py",
        "reconciler/git/writer.py",
    }
    assert commands_in(modules) == set(DAEMON_COMMANDS)


def test_the_declared_agent_commands_are_what_its_source_runs() -> None:
    found = commands_in(sorted((SOURCE / "agent").glob("*.py")))
    found.add(AGENT_DEFAULTS["reboot-command"].split()[0])
    assert found == AGENT_COMMANDS


def installed_packages(containerfile: str) -> set[str]:
    """The packages of every `apt-get install` in ``containerfile`` (continuations joined)."""
    text = containerfile.replace("\\\n", " ")
    packages: set[str] = set()
    for match in re.finditer(r"apt-get install ([^&\n]*)", text):
        packages |= {word for word in match.group(1).split() if not word.startswith("-")}
    return packages


def test_the_container_installs_every_command_the_daemon_runs() -> None:
    installed = installed_packages(CONTAINERFILE.read_text())
    needed = {*DAEMON_COMMANDS.values(), *STARTED_BY_THEM.values()}
    assert needed <= installed, f"missing from the Containerfile: {needed - installed}"
    assert "ca-certificates" in installed  # libgit2 checks https:// remotes against them


def test_the_package_parser_reads_a_continued_install_line() -> None:
    containerfile = "RUN apt-get update && apt-get install -y --no-install-recommends a \\\n b\n"
    assert installed_packages(containerfile) == {"a", "b"}


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="needs dpkg (Debian, as the image)")
def test_each_command_comes_from_the_package_named_for_it() -> None:
    """Asked of this machine's dpkg: the image is Debian too."""
    for program, package in {**DAEMON_COMMANDS, **STARTED_BY_THEM}.items():
        path = shutil.which(program)
        assert path is not None, f"{program} is not installed here to check"
        owner = subprocess.run(
            ["dpkg", "-S", str(Path(path).resolve())], capture_output=True, text=True, check=True
        ).stdout.split(":")[0]
        assert owner == package, (program, owner)


def test_the_agent_docs_list_every_command_the_agent_runs() -> None:
    docs = (ROOT / "docs" / "agent.md").read_text()
    needs = docs.split("**What it needs on the host.**", 1)[1].split("\n**", 1)[0]
    listed = set(re.findall(r"^- `([^`]+)`", needs, re.M))
    assert listed == AGENT_COMMANDS


def unit_setting(unit: str, key: str) -> str:
    values = re.findall(rf"^{key}=(.*)$", unit, re.M)
    assert len(values) == 1, (key, values)
    return values[0].strip()


def sysusers(text: str) -> dict[str, set[str]]:
    """Users and groups a sysusers.d file creates (a `u` line makes a group of its name)."""
    made: dict[str, set[str]] = {"users": set(), "groups": set()}
    for line in text.splitlines():
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        kind, name = fields[0], fields[1]
        if kind == "u":
            made["users"].add(name)
            made["groups"].add(name)
        elif kind == "g":
            made["groups"].add(name)
    return made


def test_the_units_user_is_created_by_the_sysusers_file_and_run_by_the_container() -> None:
    unit = (DEPLOY / "systemd" / "reconciler.service").read_text()
    made = sysusers((DEPLOY / "systemd" / "reconciler.sysusers.conf").read_text())
    user, group = unit_setting(unit, "User"), unit_setting(unit, "Group")
    assert user in made["users"]
    assert group in made["groups"]
    assert "DynamicUser=yes" not in unit  # one way to get a user, not two
    assert re.findall(r"^USER (\S+)$", CONTAINERFILE.read_text(), re.M) == [user]


def test_the_sysusers_parser_ignores_comments_and_reads_groups() -> None:
    made = sysusers("# u nobody\nu svc - 'x' /var/lib/svc -\ng extra -\n")
    assert made == {"users": {"svc"}, "groups": {"svc", "extra"}}


def token_paths(text: str) -> set[str]:
    """Absolute paths of agent token files: under /etc, /var or /run, and named `token`."""
    return set(re.findall(r"/(?:etc|var|run)/[\w.-]+(?:/[\w.-]+)*/token\b", text))


def test_every_file_names_the_agents_default_token_path() -> None:
    assert AGENT_DEFAULTS["token-file"] == AGENT_TOKEN
    files = [
        *(ROOT / "docs").rglob("*.md"),
        *(file for file in DEPLOY.rglob("*") if file.is_file()),
        *(SOURCE / "agent").glob("*.py"),
        ROOT / "README.md",
    ]
    named = {str(file.relative_to(ROOT)): token_paths(file.read_text()) for file in files}
    disagreeing = {file: paths for file, paths in named.items() if paths - {AGENT_TOKEN}}
    assert disagreeing == {}
    assert AGENT_TOKEN in named["docs/agent.md"]
    assert AGENT_TOKEN in named["deploy/systemd/reconciler-agent.service"]


def test_the_token_path_finder_finds_another_path() -> None:
    assert token_paths("e.g. /etc/fleet-agent/token, not /v1/token") == {"/etc/fleet-agent/token"}
