"""A Flask app that keeps secrets as Fernet tokens made by fernet-sidecar.

    FERNET_SIDECAR_TARGET=unix:///run/fernet/fernet.sock flask --app flask_app run

    curl -X POST --data-binary JBSWY3DPEHPK3PXP localhost:5000/secrets
    curl -X POST -H 'Content-Type: application/json' -d '{"token": "gAAAAA..."}' localhost:5000/secrets/open
"""

import os
import threading

from flask import Flask, current_app, jsonify, request

from fernet_sidecar import InvalidToken, SidecarFernet, SidecarUnavailable

_lock = threading.Lock()


def fernet() -> SidecarFernet:
    """The app's one client, made on first use (so after any fork of the
    worker processes: gRPC channels do not survive a fork)."""
    with _lock:
        client = current_app.extensions.get("fernet_sidecar")
        if client is None:
            client = SidecarFernet(
                current_app.config["FERNET_SIDECAR_TARGET"],
                timeout=current_app.config["FERNET_SIDECAR_TIMEOUT"],
            )
            current_app.extensions["fernet_sidecar"] = client
        return client


def create_app(test_config=None):
    app = Flask(__name__)
    app.config.from_mapping(
        FERNET_SIDECAR_TARGET=os.environ.get("FERNET_SIDECAR_TARGET", "localhost:50051"),
        FERNET_SIDECAR_TIMEOUT=5.0,
        SECRET_TTL=None,  # seconds, or None for no age limit
    )
    if test_config:
        app.config.update(test_config)

    @app.post("/secrets")
    def seal():
        return jsonify(token=fernet().encrypt(request.get_data()).decode("ascii"))

    @app.post("/secrets/open")
    def open_secret():
        token = (request.get_json(silent=True) or {}).get("token", "")
        try:
            secret = fernet().decrypt(token, ttl=app.config["SECRET_TTL"])
        except InvalidToken as e:
            return jsonify(error="invalid token", reason=e.reason), 400
        return jsonify(secret=secret.decode("utf-8", "replace"))

    @app.errorhandler(SidecarUnavailable)
    def sidecar_down(e):
        return jsonify(error="encryption service unavailable"), 503

    return app
