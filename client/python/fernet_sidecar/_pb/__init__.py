"""Stubs generated from proto/fernet/v1/fernet.proto by generate.sh. Do not edit."""
