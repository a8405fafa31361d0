"""The agent's RPM (deploy/rpm/reconciler-agent.spec), built by `make rpm` with the real
rpmbuild once per release and read back with `rpm -qp`: its name, version, file list, modes,
config flags, dependencies and scriptlets, the units' interpreter per release, a payload
that runs, and rpmlint with no finding the rpmlintrc does not explain."""

from __future__ import annotations

import configparser
import hashlib
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from reconciler.agent import AGENT_VERSION
from reconciler.agent.__main__ import DEFAULTS as AGENT_DEFAULTS
from tests.agent_support import oldest_python
from tests.conftest import ROOT

pytestmark = [
    pytest.mark.needs_tool("make"),
    pytest.mark.needs_tool("rpmbuild"),
    pytest.mark.needs_tool("rpm2cpio"),
    pytest.mark.needs_tool("cpio"),
]

RPM_DIR = ROOT / "deploy" / "rpm"
SYSTEMD_DIR = ROOT / "deploy" / "systemd"
PYZ = "/usr/libexec/reconciler-agent/reconciler-agent.pyz"
UNITS = ("reconciler-agent.service", "reconciler-agent-enroll.service")
ENROLL_ARGUMENTS = ["enroll", "--name", "%H"]
#: Each release's system Python: the one path its units and wrapper must run the agent with,
#: and the package that ships it.
PYTHON_OF_RELEASE = {
    "el8": ("/usr/libexec/platform-python", "platform-python"),
    "el9": ("/usr/bin/python3", "python3"),
}
#: path -> (mode, owner:group, rpm file flags); "cn" is %config(noreplace).
EXPECTED_FILES = {
    "/etc/reconciler-agent": ("drwx------", "root:root", ""),
    "/etc/reconciler-agent/agent.conf": ("-rw-r--r--", "root:root", "cn"),
    "/usr/bin/reconciler-agent": ("-rwxr-xr-x", "root:root", ""),
    "/usr/lib/systemd/system/reconciler-agent.service": ("-rw-r--r--", "root:root", ""),
    "/usr/lib/systemd/system/reconciler-agent-enroll.service": ("-rw-r--r--", "root:root", ""),
    "/usr/libexec/reconciler-agent": ("drwxr-xr-x", "root:root", ""),
    PYZ: ("-rw-r--r--", "root:root", ""),
}


@pytest.fixture(scope="module")
def rpms(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """`make rpm` into a private topdir and zipapp path: release ("el8") -> the built RPM."""
    build = tmp_path_factory.mktemp("rpmbuild")
    subprocess.run(
        ["make", "-s", "rpm", f"RPM_TOPDIR={build / 'top'}", f"AGENT_PYZ={build / 'agent.pyz'}"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    built = sorted((build / "top" / "RPMS" / "noarch").glob("*.rpm"))
    by_release = {re.search(r"\.(el\d+)\.noarch\.rpm$", p.name).group(1): p for p in built}  # type: ignore[union-attr]
    assert set(by_release) == set(PYTHON_OF_RELEASE), built
    return by_release


@pytest.fixture(scope="module")
def payloads(rpms: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each RPM's files, unpacked with rpm2cpio | cpio: release -> the unpacked root."""
    roots = {}
    for release, package in rpms.items():
        root = tmp_path_factory.mktemp(f"payload-{release}")
        archive = subprocess.run(["rpm2cpio", str(package)], check=True, capture_output=True)
        subprocess.run(["cpio", "-idm", "--quiet"], input=archive.stdout, cwd=root, check=True)
        roots[release] = root
    return roots


def query(package: Path, *args: str) -> str:
    return subprocess.run(
        ["rpm", "-qp", *args, str(package)], check=True, capture_output=True, text=True
    ).stdout


def exec_start(unit_text: str) -> list[str]:
    lines = re.findall(r"^ExecStart=(.*)$", unit_text, re.M)
    assert len(lines) == 1, lines
    return shlex.split(lines[0])


@pytest.mark.parametrize("release", sorted(PYTHON_OF_RELEASE))
def test_the_package_is_the_noarch_agent_at_the_agents_version(
    rpms: dict[str, Path], release: str
) -> None:
    fields = query(rpms[release], "--qf", "%{NAME} %{VERSION} %{RELEASE} %{ARCH}").split()
    assert fields == ["reconciler-agent", AGENT_VERSION, f"1.{release}", "noarch"]


@pytest.mark.parametrize("release", sorted(PYTHON_OF_RELEASE))
def test_the_file_list_modes_and_config_flags(rpms: dict[str, Path], release: str) -> None:
    listing = query(
        rpms[release],
        "--qf",
        "[%{FILENAMES}\t%{FILEMODES:perms}\t%{FILEUSERNAME}:%{FILEGROUPNAME}\t"
        "%{FILEFLAGS:fflags}\n]",
    )
    files = {}
    for line in listing.splitlines():
        path, mode, owner, flags = line.split("\t")
        files[path] = (mode, owner, flags)
    assert files == EXPECTED_FILES
    assert query(rpms[release], "--configfiles").split() == ["/etc/reconciler-agent/agent.conf"]


@pytest.mark.parametrize("release", sorted(PYTHON_OF_RELEASE))
def test_it_requires_only_what_the_base_os_has(rpms: dict[str, Path], release: str) -> None:
    python_package = PYTHON_OF_RELEASE[release][1]
    requires = {line.split()[0] for line in query(rpms[release], "--requires").splitlines()}
    allowed = {python_package, "rpm-ostree", "systemd", "/bin/sh", "config(reconciler-agent)"}
    unexpected = {name for name in requires - allowed if not name.startswith("rpmlib(")}
    assert unexpected == set()
    assert {python_package, "rpm-ostree", "systemd"} <= requires
    # The scriptlets call systemctl, so systemd must be there when they run.
    kinds = query(rpms[release], "--qf", "[%{REQUIRENAME} %{REQUIREFLAGS:deptype}\n]")
    for scriptlet in ("post", "preun", "postun"):
        assert f"systemd {scriptlet}" in kinds.splitlines()
    # greenboot is a hint only: never pulled in, not even by default weak dependencies.
    assert query(rpms[release], "--suggests").split() == ["greenboot"]
    assert query(rpms[release], "--recommends").strip() == ""


def scriptlets(package: Path) -> dict[str, str]:
    """`rpm -qp --scripts` split into its scriptlets: "postinstall" -> body."""
    parts = re.split(
        r"^(\w+) scriptlet \(using /bin/sh\):$", query(package, "--scripts"), flags=re.M
    )
    return dict(zip(parts[1::2], parts[2::2], strict=True))


@pytest.mark.parametrize("release", sorted(PYTHON_OF_RELEASE))
def test_the_scriptlets_are_systemds(rpms: dict[str, Path], release: str) -> None:
    scripts = scriptlets(rpms[release])
    assert set(scripts) == {"postinstall", "preuninstall", "postuninstall"}
    both = " ".join(UNITS)
    # On first install, enable the units only as the OS's presets say (EL: disabled).
    assert re.search(r"if \[ \$1 -eq 1 \]", scripts["postinstall"])
    assert f"systemctl --no-reload preset {both} " in scripts["postinstall"]
    # On removal, not on upgrade: stop and disable both.
    assert re.search(r"if \[ \$1 -eq 0 \]", scripts["preuninstall"])
    assert f"systemctl --no-reload disable --now {both} " in scripts["preuninstall"]
    # On upgrade: restart the agent onto the new code; the first-boot oneshot is left alone.
    assert re.search(r"if \[ \$1 -ge 1 \]", scripts["postuninstall"])
    assert "systemctl try-restart reconciler-agent.service " in scripts["postuninstall"]
    assert "reconciler-agent-enroll" not in scripts["postuninstall"]


@pytest.mark.parametrize("release", sorted(PYTHON_OF_RELEASE))
@pytest.mark.parametrize("unit", UNITS)
def test_the_units_run_the_zipapp_with_the_releases_python(
    payloads: dict[str, Path], release: str, unit: str
) -> None:
    installed = (payloads[release] / "usr/lib/systemd/system" / unit).read_text()
    source = (SYSTEMD_DIR / unit).read_text()
    python = PYTHON_OF_RELEASE[release][0]
    command = exec_start(installed)
    assert command[:2] == [python, PYZ]
    assert (payloads[release] / PYZ.lstrip("/")).is_file()
    # One source of truth: the installed unit is deploy/systemd's with only the interpreter
    # replaced.
    assert installed == source.replace("ExecStart=/usr/bin/python3 ", f"ExecStart={python} ")
    assert command[2:] == exec_start(source)[2:]


@pytest.mark.parametrize("release", sorted(PYTHON_OF_RELEASE))
def test_the_wrapper_runs_the_zipapp_with_the_releases_python(
    payloads: dict[str, Path], release: str, tmp_path: Path
) -> None:
    root = payloads[release]
    wrapper = (root / "usr/bin/reconciler-agent").read_text()
    python = PYTHON_OF_RELEASE[release][0]
    assert wrapper.startswith("#!/bin/sh\n")
    assert f'exec {python} {PYZ} "$@"\n' in wrapper
    # Run it, with the oldest Python here standing in for the release's.
    local = tmp_path / "reconciler-agent"
    local.write_text(
        wrapper.replace(python, shlex.quote(oldest_python())).replace(PYZ, str(root / PYZ[1:]))
    )
    result = subprocess.run(
        ["sh", str(local), "--version"], check=False, capture_output=True, text=True
    )
    assert (result.returncode, result.stdout.strip()) == (0, AGENT_VERSION), result.stderr


@pytest.mark.parametrize("release", sorted(PYTHON_OF_RELEASE))
def test_the_packaged_zipapp_runs_on_the_oldest_python_here(
    payloads: dict[str, Path], release: str
) -> None:
    """3.6 where pyenv has it: CentOS 8's platform-python."""
    zipapp = payloads[release] / PYZ.lstrip("/")
    result = subprocess.run(
        [oldest_python(), str(zipapp), "--version"], check=False, capture_output=True, text=True
    )
    assert (result.returncode, result.stdout.strip()) == (0, AGENT_VERSION), result.stderr


def test_the_enrolment_units_command_creates_a_token_once(
    payloads: dict[str, Path], tmp_path: Path
) -> None:
    """The EL8 unit's ExecStart, run with the oldest Python here for platform-python, %H
    expanded, and a token file under tmp for the default /etc/reconciler-agent/token."""
    root = payloads["el8"]
    unit = (root / "usr/lib/systemd/system/reconciler-agent-enroll.service").read_text()
    python, zipapp, *arguments = exec_start(unit)
    assert (python, zipapp, arguments) == (PYTHON_OF_RELEASE["el8"][0], PYZ, ENROLL_ARGUMENTS)
    token_file = tmp_path / "reconciler-agent" / "token"
    command = [
        oldest_python(),
        str(root / zipapp.lstrip("/")),
        *(argument.replace("%H", "dub-call-01") for argument in arguments),
        f"--token-file={token_file}",
    ]
    first = subprocess.run(command, check=True, capture_output=True, text=True)
    token = token_file.read_text().strip()
    assert token_file.stat().st_mode & 0o777 == 0o600
    digest = hashlib.sha256(token.encode()).hexdigest()
    assert first.stdout == f"  - name: dub-call-01\n    tokenSha256: {digest}\n"
    # A second boot with the token there: the unit is skipped by its condition, and even
    # when run, the command keeps the token.
    assert f"ConditionPathExists=!{AGENT_DEFAULTS['token-file']}\n" in unit
    again = subprocess.run(command, check=True, capture_output=True, text=True)
    assert (again.stdout, token_file.read_text().strip()) == (first.stdout, token)


def test_the_documented_off_host_enrolment_works_with_the_packaged_zipapp(
    payloads: dict[str, Path], tmp_path: Path
) -> None:
    """docs/agent-install.md, "Provisioning": the command as the page shows it."""
    page = (ROOT / "docs" / "agent-install.md").read_text()
    lines = re.findall(r"^python3 reconciler-agent\.pyz enroll .*$", page, re.M)
    assert len(lines) == 1
    arguments = shlex.split(lines[0])[2:]  # after `python3 reconciler-agent.pyz`
    packaged = payloads["el8"] / PYZ.lstrip("/")
    result = subprocess.run(
        [oldest_python(), str(packaged), *arguments],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
    )
    token_file = tmp_path / arguments[arguments.index("--token-file") + 1]
    token = token_file.read_text().strip()
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert token_file.parent.stat().st_mode & 0o777 == 0o700
    digest = hashlib.sha256(token.encode()).hexdigest()
    assert result.stdout == (
        f'  - name: dub-call-01\n    labels: {{site: "dub"}}\n    tokenSha256: {digest}\n'
    )


@pytest.mark.parametrize("release", sorted(PYTHON_OF_RELEASE))
def test_the_packaged_config_is_the_commented_source_and_sets_nothing(
    payloads: dict[str, Path], release: str
) -> None:
    installed = (payloads[release] / "etc/reconciler-agent/agent.conf").read_text()
    assert installed == (RPM_DIR / "agent.conf").read_text()
    config = configparser.ConfigParser()
    config.read_string(installed)
    # Everything commented out: the agent's defaults apply until the operator edits it.
    assert config.sections() == ["agent"]
    assert dict(config["agent"]) == {}


def commented_settings(text: str) -> dict[str, list[str]]:
    """The `# key = value` lines of a config file: key -> the values shown, in order."""
    shown: dict[str, list[str]] = {}
    for key, value in re.findall(r"^# ([a-z][a-z-]*) =(?: (.*))?$", text, re.M):
        shown.setdefault(key, []).append(value)
    return shown


def test_the_config_file_shows_every_setting_with_its_default() -> None:
    shown = commented_settings((RPM_DIR / "agent.conf").read_text())
    assert set(shown) == set(AGENT_DEFAULTS)
    for key, default in AGENT_DEFAULTS.items():
        # A setting without a default (server) may show an example instead.
        assert default in shown[key] or default == "", (key, shown[key], default)


def test_the_config_parser_reads_commented_settings() -> None:
    text = "# Why.\n# interval = 60\n# os =\n#   e.g. = not a setting\n# os = callos\n"
    assert commented_settings(text) == {"interval": ["60"], "os": ["", "callos"]}


@pytest.mark.needs_tool("rpmlint")
def test_rpmlint_finds_nothing_the_rpmlintrc_does_not_explain(rpms: dict[str, Path]) -> None:
    result = subprocess.run(
        ["rpmlint", "-r", str(RPM_DIR / "reconciler-agent.rpmlintrc"), *map(str, rpms.values())],
        check=False,
        capture_output=True,
        text=True,
    )
    # An unused filter is an error too (unused-rpmlintrc-filter): the file cannot go stale.
    assert result.returncode == 0, result.stdout
    assert re.search(r"\b0 errors, 0 warnings\b", result.stdout), result.stdout


def test_every_rpmlint_filter_is_explained() -> None:
    """Each paragraph of filters starts with a comment that says why."""
    text = (RPM_DIR / "reconciler-agent.rpmlintrc").read_text()
    filters = 0
    for paragraph in text.split("\n\n"):
        lines = paragraph.strip().splitlines()
        if any(line.startswith("addFilter") for line in lines):
            assert lines[0].startswith("# "), paragraph
            filters += sum(line.startswith("addFilter") for line in lines)
    assert filters == len(re.findall(r"^addFilter", text, re.M)) > 0
