"""System checks: a malformed FERNET_SIDECAR is an error for every command;
`check --deploy` warns about the in-process backend and about a sidecar it
cannot reach."""

from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from .._backend import IN_PROCESS
from .._errors import SidecarError
from . import conf

# How long `check --deploy` waits for the sidecar.
_DEPLOY_TIMEOUT = 3.0


def register():
    checks.register(check_settings)
    checks.register(check_deploy, deploy=True)


def check_settings(app_configs=None, **kwargs):
    try:
        conf.validate()
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), hint="See docs/django.md, Settings.", id="fernet_sidecar.E001")]
    return []


def check_deploy(app_configs=None, **kwargs):
    try:
        options, _ = conf.options()
    except ImproperlyConfigured:
        return []  # check_settings reports it
    if options["backend"] == IN_PROCESS:
        return [
            checks.Warning(
                'FERNET_SIDECAR["BACKEND"] is "in-process": the keys are in the app\'s settings and process.',
                hint="It is for app test suites and local development; deploy with the sidecar.",
                id="fernet_sidecar.W001",
            )
        ]
    try:
        with conf.make_with_timeout(_DEPLOY_TIMEOUT) as fernet:
            fernet.status()
    except ImproperlyConfigured:
        return []
    except SidecarError as exc:
        return [
            checks.Warning(
                "fernet-sidecar at %s cannot be reached (%s)." % (options["target"], conf.failure(exc)),
                hint="Start the sidecar beside the app, or fix FERNET_SIDECAR[\"TARGET\"].",
                id="fernet_sidecar.W002",
            )
        ]
    return []
