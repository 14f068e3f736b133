import subprocess
import sys

from fedspec import __version__


def test_version_command_prints_the_package_version():
    out = subprocess.run(
        [sys.executable, "-m", "fedspec.cli", "version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == __version__
