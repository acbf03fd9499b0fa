"""Node for the JavaScript client's tests: where it is, and a clear skip when it is not."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.support.processes import ROOT

JS_CLIENT = ROOT / "clients" / "js"


def node_binary() -> str:
    """The `node` on the PATH (>= 18, for fetch and web streams), or skip saying why."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("the JavaScript client's tests need Node.js >= 18 on the PATH")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True)
    major = int(version.stdout.strip().lstrip("v").split(".")[0])
    if major < 18:
        pytest.skip(f"the JavaScript client needs Node.js >= 18, found {version.stdout.strip()}")
    return node
