"""Tests of fernet_sidecar against a real sidecar; see tests/env.py."""
