"""The HTTP API fixtures (an app over a ledger holding the plan 768/QĐ-UBND, one token per
role) are shared with tests/api. The server and worker processes the drills start write their
logs under pytest's temporary directory (kept for the last few runs), not in /tmp for good."""

import pytest

import drills.common
from tests.api.conftest import api, sqlite_api  # noqa: F401


@pytest.fixture(autouse=True, scope="session")
def _process_logs_under_pytest_tmp(tmp_path_factory):
    drills.common.LOG_DIR = tmp_path_factory.mktemp("process-logs")
    yield
    drills.common.LOG_DIR = None
