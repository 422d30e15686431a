import os

from hypothesis import settings

pytest_plugins = ["tests.fakes.vendor", "tests.kafka_broker"]

# `.ci/run` sets HYPOTHESIS_PROFILE=ci: CI draws the same examples on every run of a
# commit, so a property (or schemathesis case) that fails there fails every time
# and can be reproduced; a developer's run keeps the default and explores anew.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
