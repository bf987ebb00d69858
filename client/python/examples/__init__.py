"""Examples of fernet_sidecar in Django and Flask apps (importable for the tests)."""
