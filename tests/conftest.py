pytest_plugins = ["tests.fakes.vendor"]
