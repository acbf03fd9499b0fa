"""The OpenAI front-door suites, unchanged, against generations on a Redis Cluster.

Re-collected here so that this package's `stack` (tests/cluster/conftest.py) runs
them: the official openai SDK through Chat Completions and Responses (background
mode, resume with `starting_after` across a SIGKILLed replica, cancel, tool
loops), every stream followed through the sharded-pub/sub hub. The Anthropic
door's suite is re-collected in test_door_suite_anthropic.py (the modules share
some names).
"""

from tests.frontdoors.conftest import openai_client  # noqa: F401  # the SDK fixture
from tests.frontdoors.test_openai_door import *  # noqa: F403  # re-collects Chat Completions tests
from tests.frontdoors.test_responses_door import *  # noqa: F403  # idem, the Responses API
