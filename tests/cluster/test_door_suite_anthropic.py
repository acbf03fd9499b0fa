"""The Anthropic Messages door's suite, unchanged, against generations on a Redis Cluster."""

from tests.frontdoors.conftest import anthropic_client  # noqa: F401  # the SDK fixture
from tests.frontdoors.test_anthropic_door import *  # noqa: F403  # re-collects the Messages door tests
