"""The FERNET_SIDECAR setting, and the process's one backend made from it.

    FERNET_SIDECAR = {
        "TARGET": "unix:///run/fernet/fernet.sock",   # default localhost:50051
        "TIMEOUT": 5.0,                               # seconds per RPC
        "TTL": None,                                  # seconds: refuse older tokens on read
        # "BACKEND": "in-process", "KEYS": [new, old] # app tests and local development only
    }
"""

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed

from .._backend import BACKENDS, IN_PROCESS, SIDECAR, PerProcess, make_fernet
from .._client import DEFAULT_TARGET, DEFAULT_TIMEOUT, _check_target, _check_timeout

SETTING = "FERNET_SIDECAR"
_KEYS = ("TARGET", "TIMEOUT", "TTL", "BACKEND", "KEYS")


def options():
    """The setting as make_fernet's keyword arguments, and the TTL.
    ImproperlyConfigured says what is wrong (never a key)."""
    raw = getattr(settings, SETTING, {})
    if not isinstance(raw, dict):
        raise ImproperlyConfigured("%s must be a dict, not %s" % (SETTING, type(raw).__name__))
    unknown = sorted(str(k) for k in raw if k not in _KEYS)
    if unknown:
        raise ImproperlyConfigured("%s has unknown keys %s (known: %s)" % (SETTING, ", ".join(unknown), ", ".join(_KEYS)))
    backend = raw.get("BACKEND", SIDECAR)
    if backend not in BACKENDS:
        raise ImproperlyConfigured('%s["BACKEND"] must be one of %s, not %r' % (SETTING, ", ".join(BACKENDS), backend))
    ttl = raw.get("TTL")
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 1):
        raise ImproperlyConfigured('%s["TTL"] must be a whole number of seconds (1 or more) or None' % SETTING)
    kwargs = {"backend": backend}
    if backend == IN_PROCESS:
        for name in ("TARGET", "TIMEOUT"):
            if name in raw:
                raise ImproperlyConfigured('%s["%s"] is for the sidecar backend; the in-process backend takes KEYS only' % (SETTING, name))
        kwargs["keys"] = raw.get("KEYS")
    else:
        if raw.get("KEYS"):
            raise ImproperlyConfigured('%s["KEYS"] is for the "in-process" backend only: the sidecar holds its own keys' % SETTING)
        kwargs["target"] = raw.get("TARGET", DEFAULT_TARGET)
        kwargs["timeout"] = raw.get("TIMEOUT", DEFAULT_TIMEOUT)
    return kwargs, ttl


def validate():
    """Raises ImproperlyConfigured when the setting is wrong. Opens no gRPC
    channel: a process that forks later (a preloading server) must not
    have started gRPC."""
    kwargs, _ = options()
    try:
        if kwargs["backend"] == SIDECAR:
            _check_target(kwargs["target"])
            _check_timeout(kwargs["timeout"])
        else:
            make_fernet(**kwargs).close()
    except (TypeError, ValueError) as exc:
        raise ImproperlyConfigured("%s: %s" % (SETTING, exc)) from None


def make():
    """A new backend from the setting (the caller closes it)."""
    return make_with_timeout(None)


def make_with_timeout(timeout):
    """make(), with the sidecar's timeout replaced by timeout when given."""
    kwargs, _ = options()
    if timeout is not None and kwargs["backend"] == SIDECAR:
        kwargs["timeout"] = timeout
    try:
        return make_fernet(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ImproperlyConfigured("%s: %s" % (SETTING, exc)) from None


_fernet = PerProcess(make)


def fernet():
    """The process's backend: a SidecarFernet, or an InProcessFernet."""
    return _fernet.get()


def ttl():
    """TTL from the setting: None, or seconds."""
    return options()[1]


def failure(exc):
    """What a SidecarError says in a message: its gRPC status name (or
    reason), never the details."""
    if exc.code is not None:
        return exc.code.name
    return exc.reason or "error"


def _reset(setting, **kwargs):
    # override_settings(FERNET_SIDECAR=...) in a test takes effect at once.
    if setting == SETTING:
        _fernet.reset()


setting_changed.connect(_reset)
