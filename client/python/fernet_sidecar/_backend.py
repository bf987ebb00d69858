"""What the framework integrations share: a Fernet-like object made from
settings, and one of it per process."""

import os
import threading
import weakref

from ._client import DEFAULT_TARGET, DEFAULT_TIMEOUT, SidecarFernet

#: The backends a setting may name: the sidecar, or cryptography.fernet in
#: the app's process (app test suites and local development only).
SIDECAR = "sidecar"
IN_PROCESS = "in-process"
BACKENDS = (SIDECAR, IN_PROCESS)


def make_fernet(*, backend=SIDECAR, target=DEFAULT_TARGET, timeout=DEFAULT_TIMEOUT, keys=None, **sidecar_kwargs):
    """A SidecarFernet, or with backend="in-process" an InProcessFernet
    over keys (primary first). A bad combination raises ValueError or
    TypeError that says what to change; no key is ever echoed."""
    if backend == SIDECAR:
        if keys:
            raise ValueError('keys are for the "in-process" backend only: the sidecar holds its own keys')
        return SidecarFernet(target, timeout=timeout, **sidecar_kwargs)
    if backend == IN_PROCESS:
        if sidecar_kwargs:
            raise TypeError("the in-process backend takes no %s" % ", ".join(sorted(sidecar_kwargs)))
        if not keys or isinstance(keys, (bytes, str)):
            raise ValueError('the "in-process" backend needs keys: a list of Fernet keys, primary first')
        # Imported here: only this backend needs cryptography.
        from ._inprocess import InProcessFernet

        return InProcessFernet(keys)
    raise ValueError("backend must be one of %s, not %r" % (", ".join(repr(b) for b in BACKENDS), backend))


class PerProcess:
    """One object per process, made by factory on first use.

    A gRPC channel does not survive a fork: a child (a gunicorn or uwsgi
    worker forked after the app was imported) gets an object of its own on
    first use, and never touches its parent's. It gets a lock of its own
    too: the parent's may have been held, at the fork, by a thread the
    child does not have.
    """

    def __init__(self, factory):
        self._factory = factory
        self._lock = threading.Lock()
        self._pid = None
        self._value = None
        _instances.add(self)

    def get(self):
        pid = os.getpid()
        with self._lock:
            if self._value is None or self._pid != pid:
                # A parent's object is dropped, not closed: closing it
                # here would act on the parent's channel.
                self._value = self._factory()
                self._pid = pid
            return self._value

    def reset(self):
        """Closes and forgets this process's object: the next get() makes a
        new one (after a settings change, between tests)."""
        with self._lock:
            value, same_process = self._value, self._pid == os.getpid()
            self._value = self._pid = None
        if value is not None and same_process:
            value.close()


_instances = weakref.WeakSet()


def _new_locks_in_child():
    for instance in _instances:
        instance._lock = threading.Lock()


os.register_at_fork(after_in_child=_new_locks_in_child)
