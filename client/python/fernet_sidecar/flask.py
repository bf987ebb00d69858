"""The Flask extension: one fernet-sidecar client per app and process,
configured from app.config.

    from fernet_sidecar.flask import FernetSidecar, fernet

    ext = FernetSidecar(app)            # or FernetSidecar() and ext.init_app(app)

    @app.post("/secrets")
    def seal():
        return {"token": fernet().encrypt(request.get_data()).decode()}

Configuration (app.config):

    FERNET_SIDECAR_TARGET          "host:port" or "unix:///path" (default localhost:50051)
    FERNET_SIDECAR_TIMEOUT         seconds per RPC (default 5.0; None for no deadline)
    FERNET_SIDECAR_TTL             seconds: the default ttl of decrypt() here (default None)
    FERNET_SIDECAR_BACKEND         "sidecar" (default) or "in-process"
    FERNET_SIDECAR_KEYS            the in-process backend's Fernet keys, primary first (tests)
    FERNET_SIDECAR_OPTIONS         more SidecarFernet arguments (max_attempts, credentials, ...)
    FERNET_SIDECAR_ERROR_HANDLERS  True: InvalidToken -> 400 with its reason,
                                   SidecarUnavailable -> 503 (default False)

With SQLAlchemy installed, the columns of fernet_sidecar.sqlalchemy made
without fernet= use the current app's client. The CLI group ``flask fernet``
has ``status`` and ``reencrypt``; see docs/flask.md.
"""

import asyncio

import click
from flask import current_app, g, jsonify
from flask.cli import AppGroup, with_appcontext

from . import _backend, _errors, _pushgateway, _walk
from ._client import DEFAULT_TARGET, DEFAULT_TIMEOUT
from ._legacy import LEGACY_SHAPES

__all__ = ["FernetSidecar", "FernetState", "fernet", "async_fernet"]

EXTENSION = "fernet_sidecar"
_ASYNC_CLIENT = "_fernet_sidecar_async_client"
#: the job label of `flask fernet reencrypt`'s pushes to a Pushgateway
PUSHGATEWAY_JOB = "flask"

_DEFAULTS = {
    "FERNET_SIDECAR_TARGET": DEFAULT_TARGET,
    "FERNET_SIDECAR_TIMEOUT": DEFAULT_TIMEOUT,
    "FERNET_SIDECAR_TTL": None,
    "FERNET_SIDECAR_BACKEND": _backend.SIDECAR,
    "FERNET_SIDECAR_KEYS": None,
    "FERNET_SIDECAR_OPTIONS": {},
    "FERNET_SIDECAR_ERROR_HANDLERS": False,
}


class FernetSidecar:
    """The extension. ``init_app`` reads the app's config, puts a
    :class:`FernetState` in ``app.extensions["fernet_sidecar"]``, adds the
    ``flask fernet`` commands and, if configured, the error handlers. No
    client is made until first use, so an app made before a fork (gunicorn
    --preload) gives each worker its own."""

    def __init__(self, app=None):
        if app is not None:
            self.init_app(app)

    def init_app(self, app):
        for name, value in _DEFAULTS.items():
            app.config.setdefault(name, value)
        backend = app.config["FERNET_SIDECAR_BACKEND"]
        if backend not in _backend.BACKENDS:
            raise ValueError(
                "FERNET_SIDECAR_BACKEND must be one of %s, not %r" % (", ".join(repr(b) for b in _backend.BACKENDS), backend)
            )
        app.extensions[EXTENSION] = FernetState(dict(app.config))
        if app.config["FERNET_SIDECAR_ERROR_HANDLERS"]:
            app.register_error_handler(_errors.InvalidToken, _invalid_token)
            app.register_error_handler(_errors.SidecarUnavailable, _sidecar_unavailable)
        app.cli.add_command(cli)
        try:
            from . import sqlalchemy as encrypted_columns
        except ImportError:  # no SQLAlchemy: no columns to serve
            pass
        else:
            encrypted_columns.configure(fernet)


class FernetState:
    """One app's client, as ``current_app.extensions["fernet_sidecar"]``."""

    def __init__(self, config):
        self.backend = config["FERNET_SIDECAR_BACKEND"]
        self.target = config["FERNET_SIDECAR_TARGET"]
        self.timeout = config["FERNET_SIDECAR_TIMEOUT"]
        #: the default ttl of decrypt() (seconds, or None)
        self.ttl = config["FERNET_SIDECAR_TTL"]
        self._keys = config["FERNET_SIDECAR_KEYS"]
        self._options = dict(config["FERNET_SIDECAR_OPTIONS"] or {})
        self._client = _backend.PerProcess(self._make)

    def _make(self):
        return _backend.make_fernet(backend=self.backend, target=self.target, timeout=self.timeout, keys=self._keys, **self._options)

    @property
    def fernet(self):
        """This process's client (a SidecarFernet, or an InProcessFernet),
        made on first use."""
        return self._client.get()

    def encrypt(self, data: bytes) -> bytes:
        return self.fernet.encrypt(data)

    def decrypt(self, token, ttl=None):
        """decrypt with FERNET_SIDECAR_TTL unless ttl is given."""
        return self.fernet.decrypt(token, self.ttl if ttl is None else ttl)

    def async_fernet(self):
        """The asyncio client of the running event loop (a grpc.aio channel
        belongs to one loop), kept in flask.g: Flask runs each async view in
        a loop of its own (asgiref), so this is one client per request, and
        it goes with the request. With the in-process backend, the same
        calls as coroutines."""
        loop = asyncio.get_running_loop()
        made = g.get(_ASYNC_CLIENT)
        if made is not None and made[0] is loop:
            return made[1]
        if self.backend == _backend.IN_PROCESS:
            client = _AsyncInProcess(self.fernet)
        else:
            from .aio import AsyncSidecarFernet

            client = AsyncSidecarFernet(self.target, timeout=self.timeout, **self._options)
        setattr(g, _ASYNC_CLIENT, (loop, client))
        return client

    def reset(self):
        """Closes this process's client; the next use makes a new one."""
        self._client.reset()


class _AsyncInProcess:
    """An InProcessFernet's methods as coroutines, for async views in tests."""

    def __init__(self, fernet):
        self._fernet = fernet

    def __getattr__(self, name):
        method = getattr(self._fernet, name)

        async def call(*args, **kwargs):
            return method(*args, **kwargs)

        return call


def state() -> FernetState:
    """current_app's FernetState."""
    try:
        return current_app.extensions[EXTENSION]
    except KeyError:
        raise RuntimeError("FernetSidecar is not set up on this app: FernetSidecar(app) or init_app(app)") from None


def fernet():
    """current_app's client for this process."""
    return state().fernet


def async_fernet():
    """current_app's asyncio client for the running event loop."""
    return state().async_fernet()


def _invalid_token(err):
    return jsonify(error="invalid token", reason=err.reason), 400


def _sidecar_unavailable(err):
    return jsonify(error="encryption service unavailable"), 503


# -- flask fernet ... --------------------------------------------------------

cli = AppGroup("fernet", help="fernet-sidecar: status, and re-encrypting columns.")


@cli.command("status")
@with_appcontext
def status_command():
    """The backend's key ids and version (never keys)."""
    st = state()
    try:
        status = st.fernet.status()
    except _errors.SidecarError as err:
        raise click.ClickException("%s at %s: %s" % (st.backend, st.target, err)) from None
    where = st.target if st.backend == _backend.SIDECAR else "in process"
    click.echo("backend: %s (%s)" % (st.backend, where))
    click.echo("version: %s" % status.version)
    click.echo("primary key id: %s" % status.primary_key_id)
    click.echo("decrypt-only key ids: %s" % (", ".join(status.decrypt_only_key_ids) or "none"))


@cli.command("reencrypt")
@click.option("--table", required=True, help="The table.")
@click.option("--column", "columns", required=True, multiple=True, help="A column holding tokens (repeat for more).")
@click.option("--pk", default="id", show_default=True, help="The table's primary key column (one, ordered).")
@click.option("--batch-size", default=_walk.DEFAULT_BATCH_SIZE, show_default=True, type=click.IntRange(min=1))
@click.option("--check", is_flag=True, help="Count rows by key and write nothing; exit 3 if any is left to do.")
@click.option("--dry-run", is_flag=True, help="Count what would be written, and write nothing.")
@click.option("--legacy-plaintext", type=click.Choice(LEGACY_SHAPES), help="Values of this shape that are not tokens are legacy plaintext.")
@click.option("--encrypt-plaintext", is_flag=True, help="Encrypt legacy plaintext in place (needs --legacy-plaintext).")
@click.option("--database-uri", help="SQLAlchemy URL; default: Flask-SQLAlchemy's engine, else SQLALCHEMY_DATABASE_URI.")
@click.option(
    "--pushgateway",
    metavar="URL",
    help="Prometheus Pushgateway (http://host:9091): push each column's progress and outcome there, as job %s grouped by table and column."
    % PUSHGATEWAY_JOB,
)
@with_appcontext
def reencrypt_command(table, columns, pk, batch_size, check, dry_run, legacy_plaintext, encrypt_plaintext, database_uri, pushgateway):
    """Re-encrypt columns under the primary key, in batches, in place.

    Each batch is one SELECT, one rotate_many and one transaction of
    conditional UPDATEs (a row the app changed meanwhile is left for a
    rerun). Only text columns: EncryptedString, EncryptedText.
    """
    if encrypt_plaintext and not legacy_plaintext:
        raise click.UsageError("--encrypt-plaintext needs --legacy-plaintext")
    gateway = None
    if pushgateway:
        if check or dry_run:
            raise click.UsageError("--pushgateway reports rotations; --dry-run and --check do not rotate")
        try:
            gateway = _pushgateway.Pushgateway(pushgateway, PUSHGATEWAY_JOB, warn=_echo_err)
        except RuntimeError as exc:
            raise click.ClickException(str(exc)) from None
    engine, dispose = _engine(database_uri)
    pending = 0
    try:
        for column in columns:
            connection = engine.raw_connection()
            try:
                db = _walk.Database(connection, paramstyle=engine.dialect.paramstyle, quote=engine.dialect.identifier_preparer.quote)
                report = _walk.walk(
                    db,
                    fernet(),
                    table,
                    column,
                    pk,
                    batch_size=batch_size,
                    check=check,
                    dry_run=dry_run,
                    legacy_plaintext=legacy_plaintext,
                    encrypt_plaintext=encrypt_plaintext,
                    monitor=gateway and gateway.run(table, column),
                )
            except _errors.SidecarError as err:
                raise click.ClickException("%s.%s: %s" % (table, column, err)) from None
            finally:
                connection.close()
            click.echo("%s.%s:" % (table, column))
            for label, value in report.lines():
                click.echo("  %s: %s" % (label, value))
            pending += report.pending()
    finally:
        dispose()
    if pending:
        # 3, as fernetctl and manage.py fernet_reencrypt: done, but rows are
        # (or, for --check and --dry-run, would stay) off the primary key.
        what = "would be left" if check or dry_run else "are"
        click.echo("%d row(s) %s off the primary key" % (pending, what), err=True)
        raise click.exceptions.Exit(3)


def _echo_err(line):
    click.echo(line, err=True)


def _engine(database_uri):
    """The engine to walk with, and how to let it go."""
    if database_uri is None:
        flask_sqlalchemy = current_app.extensions.get("sqlalchemy")
        if flask_sqlalchemy is not None:
            return flask_sqlalchemy.engine, lambda: None
        database_uri = current_app.config.get("SQLALCHEMY_DATABASE_URI")
    if not database_uri:
        raise click.UsageError("no database: pass --database-uri, set SQLALCHEMY_DATABASE_URI, or use Flask-SQLAlchemy")
    import sqlalchemy

    engine = sqlalchemy.create_engine(database_uri, future=True)
    return engine, engine.dispose
