"""Warnings are errors in development and CI builds only (ARBITER_WERROR, off by default).

A user's build (`pip install`, the wheel, the .deb, a plain `cmake`) must not fail because a newer
compiler warns about something new; scripts/test.sh, scripts/demo.sh and tests/fuzz/run.sh turn the
option on (scripts/lib.sh: build_tree). Each test configures a scratch build tree and reads the
compiler command lines CMake generated.
"""

import json
import shutil
import subprocess
import tempfile
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def compile_commands(*options: str) -> list[str]:
    """The compiler command line of every C file, for a tree configured with OPTIONS."""
    build = Path(tempfile.mkdtemp(prefix="arbiter-cmake-", dir="/tmp"))
    try:
        result = subprocess.run(["cmake", "-S", str(REPO), "-B", str(build), "-DCMAKE_EXPORT_COMPILE_COMMANDS=ON",
                                 *options], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"cmake {' '.join(options)} failed:\n{result.stdout}{result.stderr}"
        commands = [entry["command"] for entry in json.loads((build / "compile_commands.json").read_text())]
    finally:
        shutil.rmtree(build, ignore_errors=True)
    assert any("supervisor/arbiter.c" in command for command in commands), commands
    return commands


def pip_build_options() -> list[str]:
    """The -D options pyproject.toml gives CMake when pip builds the wheel (scikit-build-core)."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["scikit-build"]
    build_type = config.get("cmake", {}).get("build-type", "Release")
    defines = config.get("cmake", {}).get("define", {})
    return [f"-DCMAKE_BUILD_TYPE={build_type}", *(f"-D{name}={value}" for name, value in defines.items())]


@pytest.mark.parametrize("options", [
    pytest.param([], id="plain-cmake"),
    pytest.param(["-DCMAKE_BUILD_TYPE=Release", "-DCMAKE_INSTALL_PREFIX=/usr", "-DARBITER_TESTS=OFF",
                  "-DARBITER_RELOCATABLE=ON"], id="deb"),
    pytest.param(pip_build_options(), id="pip-wheel"),
])
def test_user_builds_do_not_turn_warnings_into_errors(options):
    commands = compile_commands(*options)

    assert not [command for command in commands if "-Werror" in command.split()]
    assert all("-Wall" in command.split() for command in commands), "the warnings themselves stay on"


def test_development_builds_turn_warnings_into_errors():
    commands = compile_commands("-DARBITER_WERROR=ON")

    assert all("-Werror" in command.split() for command in commands)
