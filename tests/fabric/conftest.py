"""Fabric networks shared by the tests of this folder.

``founders``: members on their own emulated hosts (:mod:`tests.fabric.founders`), formed once
per session (the tests that use it form one xdist group, `fabric-founders`: one worker) and
shared by the founders' tests and the distributed round.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fabric.founders import Founders, form
from tests.fabric_support import fabric_binaries_or_skip


@pytest.fixture(scope="session")
def founders(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Founders]:
    bins = fabric_binaries_or_skip()
    yield from form(tmp_path_factory.mktemp("founders"), bins)
