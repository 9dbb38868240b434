"""What test_services.py and test_content.py share: the services to check,
from the services.env that scripts/services.sh wrote, named by
SNAPSHOTTER_TEST_SERVICES as for the Swift tests."""

import os
import time

import pytest


def read_env(path):
    """KEY=VALUE lines; '#' starts a comment line."""
    env = {}
    with open(path) as f:
        for line in f:
            if "=" in line and not line.startswith("#"):
                k, _, v = line.strip().partition("=")
                env[k] = v
    return env


@pytest.fixture(scope="session")
def env():
    path = os.environ.get("SNAPSHOTTER_TEST_SERVICES")
    if not path:
        pytest.fail("set SNAPSHOTTER_TEST_SERVICES to DIR/services.env (scripts/services.sh check DIR does)")
    return read_env(path)


@pytest.fixture(scope="session")
def run_id():
    """Names of this run's repositories and objects: services keep what
    earlier runs left."""
    return "%x" % int(time.time() * 1000)
