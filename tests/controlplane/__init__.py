"""A real Kubernetes control plane for tests, built from pinned Go modules.

Modules: build.py (find/build binaries), certs.py (PKI), harness.py (processes), fixtures.py
(pytest plugin), waiting.py (polling helper), __main__.py (`python -m tests.controlplane`).
This package file stays empty so importing `waiting` never pulls in the rest.
"""
