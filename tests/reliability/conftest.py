"""The HTTP API fixtures (an app over a ledger holding the plan 768/QĐ-UBND, one token per
role) are shared with tests/api."""

from tests.api.conftest import api, sqlite_api  # noqa: F401
