"""The image recipes of docs/agent-install.md (deploy/image/) agree with the RPM's spec and
do what the page says: the treefile fragment and the Containerfile install the spec's
package and enable its units, their `sed` sets the server in the packaged config, and every
way of provisioning a token writes it 0600 at the agent's default path."""

from __future__ import annotations

import configparser
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from reconciler.agent.__main__ import DEFAULTS as AGENT_DEFAULTS
from tests.conftest import ROOT

IMAGE = ROOT / "deploy" / "image"
SPEC = ROOT / "deploy" / "rpm" / "reconciler-agent.spec"
AGENT_CONF = ROOT / "deploy" / "rpm" / "agent.conf"
INSTALL_DOC = ROOT / "docs" / "agent-install.md"
TOKEN = AGENT_DEFAULTS["token-file"]
SERVER_IN_EXAMPLES = "https://fleet.example.net:8443"


def spec_package() -> str:
    names = re.findall(r"^Name:\s*(\S+)$", SPEC.read_text(), re.M)
    assert len(names) == 1
    return names[0]


def spec_units() -> list[str]:
    """The units the spec's %files installs."""
    files = SPEC.read_text().split("\n%files\n", 1)[1].split("\n%changelog", 1)[0]
    return re.findall(r"^%\{_unitdir\}/(\S+\.service)$", files, re.M)


def repo_ids() -> set[str]:
    repo = configparser.ConfigParser(interpolation=None)
    repo.read(IMAGE / "reconciler-agent.repo")
    return set(repo.sections())


def test_the_spec_readers_find_the_package_and_both_units() -> None:
    assert spec_package() == "reconciler-agent"
    assert spec_units() == ["reconciler-agent.service", "reconciler-agent-enroll.service"]


def test_every_file_the_page_quotes_is_quoted_exactly() -> None:
    """A `<!-- deploy/image/X -->` line, then a fenced block holding the file as it is."""
    page = INSTALL_DOC.read_text()
    quoted = re.findall(r"^<!-- (deploy/image/\S+) -->\n```\w*\n(.*?)^```$", page, re.M | re.S)
    assert {path for path, _ in quoted} == {f"deploy/image/{file.name}" for file in IMAGE.iterdir()}
    for path, text in quoted:
        assert text == (ROOT / path).read_text(), path


def treefile() -> dict[str, object]:
    loaded = yaml.safe_load((IMAGE / "reconciler-agent.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_the_treefile_fragment_layers_the_package_and_enables_its_units() -> None:
    fragment = treefile()
    assert set(fragment) == {"repos", "packages", "units", "postprocess"}
    assert fragment["packages"] == [spec_package()]
    assert fragment["units"] == spec_units()
    # rpm-ostree finds each repo as a section of a .repo file next to the treefile.
    assert fragment["repos"] == ["reconciler-agent"]
    assert set(fragment["repos"]) <= repo_ids()  # type: ignore[arg-type]


def containerfile_runs() -> list[str]:
    text = (IMAGE / "Containerfile").read_text().replace("\\\n", " ")
    return re.findall(r"^RUN (.*)$", text, re.M)


def test_the_containerfile_installs_the_package_and_enables_its_units() -> None:
    text = (IMAGE / "Containerfile").read_text()
    runs = containerfile_runs()
    installs = [re.search(r"dnf install -y (\S+)", run) for run in runs]
    assert [found.group(1) for found in installs if found] == [spec_package()]
    enables = [re.search(r"systemctl enable ([^&]+)", run) for run in runs]
    assert [found.group(1).split() for found in enables if found] == [spec_units()]
    copied = re.findall(r"^COPY (\S+) /etc/yum\.repos\.d/\1$", text, re.M)
    assert copied == ["reconciler-agent.repo"]
    assert (IMAGE / copied[0]).is_file()


def configured_server(config_text: str) -> str:
    config = configparser.ConfigParser()
    config.read_string(config_text)
    return config.get("agent", "server", fallback="")


def run_sed(command: str, config: Path) -> None:
    """A recipe's `sed -i … /etc/reconciler-agent/agent.conf`, run on ``config``."""
    argv = shlex.split(command)
    assert argv[:2] == ["sed", "-i"]
    assert argv[-1] == "/etc/reconciler-agent/agent.conf"
    subprocess.run([*argv[:-1], str(config)], check=True)


def sed_commands() -> dict[str, str]:
    """The `sed` line of each recipe that sets the server in the image."""
    postprocess = treefile()["postprocess"]
    assert isinstance(postprocess, list)
    assert len(postprocess) == 1
    from_treefile = [line for line in postprocess[0].splitlines() if line.startswith("sed ")]
    from_containerfile = [run for run in containerfile_runs() if run.startswith("sed ")]
    assert len(from_treefile) == len(from_containerfile) == 1
    return {"treefile": from_treefile[0], "Containerfile": from_containerfile[0]}


@pytest.mark.parametrize("recipe", ["treefile", "Containerfile"])
def test_the_recipes_sed_sets_the_server_in_the_packaged_config(
    recipe: str, tmp_path: Path
) -> None:
    config = tmp_path / "agent.conf"
    config.write_text(AGENT_CONF.read_text())
    assert configured_server(config.read_text()) == ""
    run_sed(sed_commands()[recipe], config)
    assert configured_server(config.read_text()) == SERVER_IN_EXAMPLES
    # Only that line changed: the rest stays the commented defaults.
    changed = set(AGENT_CONF.read_text().splitlines()) ^ set(config.read_text().splitlines())
    assert changed == {f"# server = {SERVER_IN_EXAMPLES}", f"server = {SERVER_IN_EXAMPLES}"}


def test_the_butane_config_layers_the_agent_masks_zincati_and_writes_the_token() -> None:
    butane = yaml.safe_load((IMAGE / "fcos-agent.bu").read_text())
    assert butane["variant"] == "fcos"
    directories = {d["path"]: d["mode"] for d in butane["storage"]["directories"]}
    assert directories == {"/etc/reconciler-agent": 0o700}
    files = {f["path"]: f for f in butane["storage"]["files"]}
    assert files[TOKEN]["mode"] == 0o600
    assert configured_server(files["/etc/reconciler-agent/agent.conf"]["contents"]["inline"]) == (
        SERVER_IN_EXAMPLES
    )
    repo_file = files["/etc/yum.repos.d/reconciler-agent.repo"]["contents"]["local"]
    assert (IMAGE / repo_file).is_file()
    units = {u["name"]: u for u in butane["systemd"]["units"]}
    assert units["zincati.service"]["mask"] is True
    layer = units["reconciler-agent-layer.service"]
    assert layer["enabled"] is True
    commands = [
        shlex.split(line) for line in re.findall(r"^ExecStart=(.*)$", layer["contents"], re.M)
    ]
    installs = [c for c in commands if c[:2] == ["/usr/bin/rpm-ostree", "install"]]
    assert len(installs) == 1
    assert installs[0][-1] == spec_package()
    assert ["/usr/bin/systemctl", "enable", "--now", "--no-block", "reconciler-agent.service"] in (
        commands
    )
    assert "reconciler-agent.service" in spec_units()


def test_the_kickstart_fragment_writes_the_token_0600_in_a_0700_directory(
    tmp_path: Path,
) -> None:
    text = (IMAGE / "kickstart-token.ks").read_text()
    post = re.search(r"^%post --erroronfail\n(.*?)^%end$", text, re.M | re.S)
    assert post is not None
    root = tmp_path / "root"
    root.mkdir()
    script = post.group(1).replace(" /etc/", f" {root}/etc/")
    assert "/etc/" not in script.replace(f"{root}/etc/", "")  # every path was moved
    subprocess.run(["sh", "-e", "-c", script], check=True)
    token = root / TOKEN.lstrip("/")
    assert token.read_text().strip() == "REPLACE-WITH-THIS-HOSTS-TOKEN"
    assert token.stat().st_mode & 0o777 == 0o600
    assert token.parent.stat().st_mode & 0o777 == 0o700


def test_the_cloud_init_data_writes_the_token_0600() -> None:
    text = (IMAGE / "cloud-init-token.yaml").read_text()
    assert text.startswith("#cloud-config\n")  # cloud-init ignores user data without it
    files = yaml.safe_load(text)["write_files"]
    assert [(f["path"], f["permissions"], f["owner"]) for f in files] == [
        (TOKEN, "0600", "root:root")
    ]


def test_the_enrolment_unit_runs_only_without_a_token_and_before_the_agent() -> None:
    unit = (ROOT / "deploy" / "systemd" / "reconciler-agent-enroll.service").read_text()
    assert re.findall(r"^ConditionPathExists=(.*)$", unit, re.M) == [f"!{TOKEN}"]
    assert re.findall(r"^Before=(.*)$", unit, re.M) == ["reconciler-agent.service"]
    assert re.findall(r"^Type=(.*)$", unit, re.M) == ["oneshot"]
