from tests.sparkutil import spark  # noqa: F401 (session fixture)
