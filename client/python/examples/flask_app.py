"""A Flask admin app that keeps TOTP secrets encrypted by fernet-sidecar,
with the extension, Flask-SQLAlchemy and the SQLAlchemy column types.

Rows written before encryption hold a bare base32 secret: they still log
in (legacy_plaintext="totp-base32"), and become tokens when written again
or with `flask --app flask_app fernet reencrypt --table device --column secret
--legacy-plaintext totp-base32 --encrypt-plaintext`.

    FERNET_SIDECAR_TARGET=unix:///run/fernet/fernet.sock flask --app flask_app run

    curl -X POST -H 'Content-Type: application/json' -d '{"name": "alice", "secret": "JBSWY3DPEHPK3PXP"}' localhost:5000/devices
    curl -X POST -H 'Content-Type: application/json' -d '{"name": "alice", "code": "123456"}' localhost:5000/login
    curl -X POST --data-binary 'any secret' localhost:5000/secrets
    curl -X POST -H 'Content-Type: application/json' -d '{"token": "gAAAAA..."}' localhost:5000/secrets/open
"""

import os

import pyotp
from flask import Flask, jsonify, request
from flask_sqlalchemy import SQLAlchemy

from fernet_sidecar.flask import FernetSidecar, async_fernet, fernet
from fernet_sidecar.sqlalchemy import EncryptedString

db = SQLAlchemy()
fernet_sidecar = FernetSidecar()


class Device(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(80), unique=True, nullable=False)
    # 200 characters hold the token of a secret of up to 96 bytes.
    secret = db.Column(EncryptedString(200, legacy_plaintext="totp-base32"), nullable=False)


def create_app(test_config=None):
    app = Flask(__name__)
    app.config.from_mapping(
        FERNET_SIDECAR_TARGET=os.environ.get("FERNET_SIDECAR_TARGET", "localhost:50051"),
        FERNET_SIDECAR_TTL=None,  # seconds /secrets/open accepts, or None for no age limit
        FERNET_SIDECAR_ERROR_HANDLERS=True,  # InvalidToken -> 400, SidecarUnavailable -> 503
        SQLALCHEMY_DATABASE_URI=os.environ.get("DATABASE_URL", "sqlite:///devices.db"),
    )
    if test_config:
        app.config.update(test_config)
    db.init_app(app)
    fernet_sidecar.init_app(app)

    @app.post("/devices")
    def add_device():
        body = request.get_json()
        db.session.add(Device(name=body["name"], secret=body["secret"]))
        db.session.commit()
        return jsonify(name=body["name"]), 201

    @app.post("/login")
    def login():
        body = request.get_json()
        device = db.session.execute(db.select(Device).filter_by(name=body["name"])).scalar_one_or_none()
        if device is None or not pyotp.TOTP(device.secret).verify(body["code"], valid_window=1):
            return jsonify(ok=False), 401
        return jsonify(ok=True)

    @app.get("/devices")
    def list_devices():
        # One decrypt_many for all the rows, not one RPC per row.
        devices = db.session.execute(db.select(Device).order_by(Device.name)).scalars().all()
        return jsonify(devices=[{"name": d.name, "secret_length": len(d.secret)} for d in devices])

    @app.post("/secrets")
    def encrypt_secret():
        return jsonify(token=fernet().encrypt(request.get_data()).decode("ascii"))

    @app.post("/secrets/open")
    def decrypt_secret():
        token = (request.get_json(silent=True) or {}).get("token", "")
        # The extension's decrypt applies FERNET_SIDECAR_TTL.
        secret = app.extensions["fernet_sidecar"].decrypt(token)
        return jsonify(secret=secret.decode("utf-8", "replace"))

    @app.post("/secrets/open-async")
    async def decrypt_secret_async():
        # An async view (Flask 2.2 with asgiref): the asyncio client, which
        # does not block the event loop while the sidecar answers.
        token = (request.get_json(silent=True) or {}).get("token", "")
        secret = await async_fernet().decrypt(token, ttl=app.config["FERNET_SIDECAR_TTL"])
        return jsonify(secret=secret.decode("utf-8", "replace"))

    return app
