"""The package indexes the server opens for `allow_package_managers`: each source pip, npm and apt read, in a
temporary `/etc` and home, and the public defaults after them."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from server.egress.package_indexes import default_registries, package_index_hosts


@pytest.fixture
def etc(tmp_path: Path) -> Path:
    return tmp_path / "etc"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


DEFAULTS = ("https://index.example.org/simple", "https://files.example.org", "http://npm.example.net:8080/")
"""Stand-ins for what the installed pip and npm say their defaults are."""


def configured(environ: dict[str, str], home: Path, etc: Path) -> list[str]:
    """The hosts found, without the defaults that always follow them."""
    hosts = package_index_hosts(environ, home, etc, DEFAULTS)
    defaults = ("index.example.org", "files.example.org", "npm.example.net:8080")
    assert set(defaults) <= set(hosts)
    return [host for host in hosts if host not in defaults]


def test_with_nothing_configured_the_defaults_are_all(home: Path, etc: Path) -> None:
    assert package_index_hosts({}, home, etc, DEFAULTS) == (
        "index.example.org",
        "files.example.org",
        "npm.example.net:8080",
    )
    assert package_index_hosts({}, home, etc) == ()


def test_the_defaults_are_asked_of_the_installed_pip_and_npm() -> None:
    """Whatever this machine's pip says (the test names no registry): https URLs, an index and a file host."""
    urls = default_registries(dict(os.environ))
    if not urls:
        pytest.skip("neither pip nor npm is installed where the server runs")
    assert all(url.startswith(("https://", "http://")) for url in urls)
    hosts = package_index_hosts({}, Path("/nonexistent"), Path("/nonexistent"), urls)
    assert hosts
    assert len(hosts) == len(set(hosts))


# pip ---------------------------------------------------------------------------------------------------------


def test_pip_environment_variables_give_hosts_and_non_default_ports(home: Path, etc: Path) -> None:
    environ = {
        "PIP_INDEX_URL": "https://user:s3cret@Mirror.Example.com/simple",
        "PIP_EXTRA_INDEX_URL": "http://extra.example.com:8080/simple https://third.example.com:443/x",
    }
    assert configured(environ, home, etc) == ["mirror.example.com", "extra.example.com:8080", "third.example.com"]


@pytest.mark.parametrize(
    "where",
    ["etc/pip.conf", "etc/xdg/pip/pip.conf", "home/.config/pip/pip.conf", "home/.pip/pip.conf"],
)
def test_every_pip_configuration_file_is_read(tmp_path: Path, home: Path, etc: Path, where: str) -> None:
    write(tmp_path / where, "[global]\nindex-url = https://idx.example.com/simple\n")
    assert configured({}, home, etc) == ["idx.example.com"]


def test_pip_reads_global_install_and_download_sections_with_multi_line_extras(home: Path, etc: Path) -> None:
    write(
        etc / "pip.conf",
        "[global]\nindex_url = https://a.example.com/simple\n"
        "[install]\nextra-index-url =\n    https://b.example.com/simple\n    https://c.example.com:4443/simple\n"
        "[download]\nextra-index-url = https://d.example.com/\n"
        "[freeze]\nindex-url = https://not-read.example.com/\n"
        "[global]\ntimeout = 60\n",
    )
    assert configured({}, home, etc) == ["a.example.com", "b.example.com", "c.example.com:4443", "d.example.com"]


def test_pip_config_file_and_xdg_config_home_are_honoured(tmp_path: Path, home: Path, etc: Path) -> None:
    own = write(tmp_path / "own.conf", "[global]\nindex-url = https://own.example.com/simple\n")
    write(tmp_path / "xdg/pip/pip.conf", "[global]\nindex-url = https://xdg.example.com/simple\n")
    write(home / ".config/pip/pip.conf", "[global]\nindex-url = https://not-read.example.com/simple\n")
    environ = {"PIP_CONFIG_FILE": str(own), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    assert configured(environ, home, etc) == ["xdg.example.com", "own.example.com"]


def test_pip_config_file_set_to_devnull_reads_no_file(home: Path, etc: Path) -> None:
    write(etc / "pip.conf", "[global]\nindex-url = https://idx.example.com/simple\n")
    assert configured({"PIP_CONFIG_FILE": os.devnull}, home, etc) == []


# npm ---------------------------------------------------------------------------------------------------------


def test_npm_registries_come_from_the_environment_in_either_case(home: Path, etc: Path) -> None:
    assert configured({"npm_config_registry": "https://npm.example.com/"}, home, etc) == ["npm.example.com"]
    assert configured({"NPM_CONFIG_REGISTRY": "https://npm.example.com:8443/"}, home, etc) == ["npm.example.com:8443"]
    scoped = {"npm_config_@team:registry": "https://team.example.com/"}
    assert configured(scoped, home, etc) == ["team.example.com"]


@pytest.mark.parametrize("where", ["home/.npmrc", "etc/npmrc", "usr/etc/npmrc"])
def test_every_npmrc_is_read_for_plain_and_scoped_registries(tmp_path: Path, home: Path, etc: Path, where: str) -> None:
    write(
        tmp_path / where,
        '; a comment\n# another\nregistry = "https://npm.example.com/"\n'
        "@team:registry=https://team.example.com:8443/\n"
        "//npm.example.com/:_authToken=${NPM_TOKEN}\nstrict-ssl=false\n",
    )
    assert configured({}, home, etc) == ["npm.example.com", "team.example.com:8443"]


def test_npmrc_variables_expand_and_unset_ones_skip_the_line(home: Path, etc: Path) -> None:
    write(home / ".npmrc", "registry=https://${REG_HOST}/\n@x:registry=https://${UNSET_HOST}/\n")
    assert configured({"REG_HOST": "reg.example.com"}, home, etc) == ["reg.example.com"]


def test_npm_userconfig_and_globalconfig_move_the_files(tmp_path: Path, home: Path, etc: Path) -> None:
    write(home / ".npmrc", "registry=https://not-read.example.com/\n")
    user = write(tmp_path / "user.npmrc", "registry=https://user.example.com/\n")
    glob = write(tmp_path / "global.npmrc", "registry=https://global.example.com/\n")
    environ = {"NPM_CONFIG_USERCONFIG": str(user), "npm_config_globalconfig": str(glob)}
    assert configured(environ, home, etc) == ["user.example.com", "global.example.com"]


# apt ---------------------------------------------------------------------------------------------------------


def test_apt_one_line_sources_with_options_and_comments(home: Path, etc: Path) -> None:
    write(
        etc / "apt/sources.list",
        "# deb http://commented.example.com/debian bookworm main\n"
        "deb http://deb.example.com/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/usr/share/keyrings/x.gpg] https://opts.example.com/apt stable main\n"
        "deb [ trusted=yes ] http://spaced.example.com:8081/ ./\n"
        "deb-src http://src.example.com/debian bookworm main  # trailing comment\n"
        "deb file:///srv/local ./\n"
        "deb cdrom:[Debian 12]/ bookworm main\n",
    )
    write(etc / "apt/sources.list.d/extra.list", "deb https://extra.example.com/apt stable main\n")
    write(etc / "apt/sources.list.d/old.list.disabled", "deb https://disabled.example.com/apt stable main\n")
    write(etc / "apt/sources.list.d/old.list.save", "deb https://saved.example.com/apt stable main\n")
    assert configured({}, home, etc) == [
        "deb.example.com",
        "opts.example.com",
        "spaced.example.com:8081",
        "src.example.com",
        "extra.example.com",
    ]


def test_apt_deb822_sources_read_uris_of_enabled_stanzas(home: Path, etc: Path) -> None:
    write(
        etc / "apt/sources.list.d/debian.sources",
        "Types: deb\nURIs: http://one.example.com/debian\nSuites: bookworm bookworm-updates\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        "\n"
        "# a comment between stanzas\n"
        "Types: deb\nURIs: http://two.example.com/debian\n  https://three.example.com:8443/debian\nSuites: x\n"
        "\n"
        "Types: deb\nEnabled: no\nURIs: http://off.example.com/debian\nSuites: x\n",
    )
    assert configured({}, home, etc) == ["one.example.com", "two.example.com", "three.example.com:8443"]


# What is skipped -----------------------------------------------------------------------------------------------


def test_bad_sources_are_skipped_and_logged_without_their_urls(
    home: Path, etc: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(etc / "pip.conf", "this is not [ini\n")
    write(home / ".pip/pip.conf", "[global]\nindex-url = https://user:s3cret@[not-an-ip/simple\n")
    write(home / ".npmrc", "registry=ftp://old.example.com/\n")
    write(etc / "apt/sources.list", "deb http://bad..host.example.com/debian x main\n")
    (etc / "npmrc").parent.mkdir(parents=True, exist_ok=True)
    (etc / "npmrc").write_bytes(b"registry=\xff\xfe\n")
    environ = {"PIP_INDEX_URL": "file:///srv/wheels", "PIP_EXTRA_INDEX_URL": "https://fine.example.com/"}
    with caplog.at_level(logging.DEBUG, logger="server.egress.package_indexes"):
        assert configured(environ, home, etc) == ["fine.example.com"]
    assert "s3cret" not in caplog.text
    assert "not a configuration file pip can read" in caplog.text
    assert "unparsable URL" in caplog.text
    assert "'ftp' source" in caplog.text
    assert "'file' source" in caplog.text
    assert "not a valid name" in caplog.text
    assert "could not read" in caplog.text


def test_hosts_are_listed_once_configured_first(home: Path, etc: Path) -> None:
    write(
        etc / "pip.conf",
        "[global]\nindex-url = https://files.example.org/simple\nextra-index-url = https://m.example.com/\n",
    )
    environ = {"PIP_INDEX_URL": "https://M.example.com/simple"}
    hosts = package_index_hosts(environ, home, etc, DEFAULTS)
    assert hosts[0] == "m.example.com"
    assert len(hosts) == len(set(hosts))
    assert hosts[1:] == ("files.example.org", "index.example.org", "npm.example.net:8080")


def test_a_python_without_pip_first_on_path_does_not_hide_one_with_it(tmp_path: Path) -> None:
    """The server's own environment (a uv venv) is often first on PATH and has no pip; the system's Python is asked
    next. Here a fake `python3` that fails stands first; the real one after it still answers."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "python3").write_text("#!/bin/sh\nexit 1\n")
    (fake / "python3").chmod(0o755)
    path = os.pathsep.join([str(fake), os.environ.get("PATH", os.defpath)])
    asked = default_registries({"PATH": path})
    if not default_registries(dict(os.environ)):
        pytest.skip("neither pip nor npm is installed where the server runs")
    assert asked == default_registries(dict(os.environ))
