"""Suite-wide pytest wiring: shared fixture plugins live next to the harness they start."""

pytest_plugins = ["tests.controlplane.fixtures"]
