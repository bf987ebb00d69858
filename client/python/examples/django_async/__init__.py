"""A small Django app whose async views use the asyncio client,
fernet_sidecar.aio.AsyncSidecarFernet; see views.py. Its model is what
`manage.py fernet_reencrypt` rotates."""
