"""The unit tier uses the shared session-scoped `spark` fixture of tests/conftest.py."""
