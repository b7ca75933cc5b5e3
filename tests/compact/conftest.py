from tests.sparkutil import spark_session  # noqa: F401 (the session fixture `spark`)
