"""Integration tests of the test control plane harness itself."""
