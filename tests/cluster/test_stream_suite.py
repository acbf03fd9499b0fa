"""The stream suites, unchanged, against generations on a Redis Cluster.

Re-collected here so that this package's `stack` (tests/cluster/conftest.py) runs
them: create, stream, resume by header and query, late joiners, cancel, status
and listings, all through the sharded-pub/sub hub and the cluster client.
"""

from tests.api.test_listing import *  # noqa: F403  # re-collects the listing tests here
from tests.api.test_stream_basics import *  # noqa: F403  # idem, the stream basics
from tests.api.test_viewers_and_resume import *  # noqa: F403  # idem, viewers and resume
