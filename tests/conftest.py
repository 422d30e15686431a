pytest_plugins = ["tests.fakes.vendor", "tests.kafka_broker"]
