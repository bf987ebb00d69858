"""Async views on the asyncio client: a call to the sidecar waits without
holding a thread.

    curl -X POST --data-binary 'any secret' localhost:8000/seal
    curl -X POST -H 'Content-Type: application/json' -d '{"token": "gAAAAA..."}' localhost:8000/open
"""

import asyncio
import json
import weakref

from django.conf import settings
from django.http import HttpResponseNotAllowed, JsonResponse

from fernet_sidecar import InvalidToken, SidecarUnavailable
from fernet_sidecar.aio import AsyncSidecarFernet

# A grpc.aio channel belongs to the event loop that made it: one client
# per loop. Under an ASGI server that is one per worker; under WSGI
# (runserver), Django runs each async view in a loop of its own.
_clients = weakref.WeakKeyDictionary()


def sidecar() -> AsyncSidecarFernet:
    """The asyncio client of the running event loop."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        client = _clients[loop] = AsyncSidecarFernet(settings.FERNET_SIDECAR["TARGET"], timeout=settings.FERNET_SIDECAR["TIMEOUT"])
    return client


async def close():
    """Closes the running loop's client (an ASGI app's shutdown)."""
    client = _clients.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.close()


# Django 3.2's require_POST does not wrap async views: the views check.


async def seal(request):
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    try:
        token = await sidecar().encrypt(request.body)
    except SidecarUnavailable:
        return JsonResponse({"error": "encryption service unavailable"}, status=503)
    return JsonResponse({"token": token.decode()}, status=201)


async def open_secret(request):
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    token = json.loads(request.body)["token"]
    try:
        secret = await sidecar().decrypt(token, ttl=3600)
    except InvalidToken as err:
        return JsonResponse({"error": "invalid token", "reason": err.reason}, status=400)
    except SidecarUnavailable:
        return JsonResponse({"error": "encryption service unavailable"}, status=503)
    return JsonResponse({"secret": secret.decode()})
