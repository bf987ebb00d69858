from django.conf import settings
from django.db import models
from django_otp.models import Device, ThrottlingMixin

from fernet_sidecar.django.conf import fernet as sidecar


class SidecarTOTPDevice(ThrottlingMixin, Device):
    """A django-otp TOTP device whose secret the app cannot read: ``token``
    is the secret as a Fernet token, and fernet-sidecar checks the codes
    (VerifyTOTP). ``last_t`` keeps the step of the last verified code, as
    django-otp's TOTPDevice does, so that no code is accepted twice.

    django-otp's ``t0`` and ``drift`` are not kept: steps count from the
    Unix epoch, and ``tolerance`` steps either side of now are accepted.
    """

    token = models.TextField(help_text="The TOTP secret as a Fernet token, which only fernet-sidecar opens.")
    encoding = models.CharField(
        max_length=6,
        choices=[("base32", "base32"), ("hex", "hex")],
        default="base32",
        help_text="How the secret is written inside the token: base32 (made by the sidecar) or hex (imported from TOTPDevice.key).",
    )
    step = models.PositiveSmallIntegerField(default=30, help_text="The time step in seconds.")
    digits = models.PositiveSmallIntegerField(choices=[(6, 6), (8, 8)], default=6, help_text="The number of digits to expect in a token.")
    tolerance = models.PositiveSmallIntegerField(default=1, help_text="The number of time steps in the past or future to allow.")
    last_t = models.BigIntegerField(default=-1, help_text="The time step of the latest verified token. The next token must be at a higher time step.")

    class Meta(Device.Meta):
        verbose_name = "sidecar TOTP device"

    @classmethod
    def enrol(cls, user, name="authenticator app"):
        """A new, unconfirmed device for user, and its provisioning URI: show
        the URI once as a QR code, never store it, and confirm the device
        when the user types its first code (confirm)."""
        issuer = getattr(settings, "OTP_TOTP_ISSUER", "") or ""
        enrolment = sidecar().create_totp(user.get_username(), issuer=issuer)
        device = cls.objects.create(user=user, name=name, token=enrolment.token.decode("ascii"), confirmed=False)
        return device, enrolment.provisioning_uri

    def confirm(self, token):
        """Confirms an enrolled device with a code from the user's app."""
        if not self.verify_token(token):
            return False
        self.confirmed = True
        self.save(update_fields=["confirmed"])
        return True

    def verify_token(self, token):
        allowed, _ = self.verify_is_allowed()
        if not allowed:
            return False
        result = sidecar().verify_totp(
            self.token,
            str(token),
            last_counter=self.last_t if self.last_t >= 0 else None,
            window=self.tolerance,
            digits=self.digits,
            period=self.step,
            encoding=self.encoding,
        )
        # Two logins with the same code can both get this far, each with the
        # last_t it read: only the one whose update moves last_t past the
        # code's step passes; the other is a replay.
        valid = result.valid and type(self).objects.filter(pk=self.pk, last_t__lt=result.counter).update(last_t=result.counter) == 1
        if valid:
            self.last_t = result.counter
            self.throttle_reset(commit=False)
        else:
            self.throttle_increment(commit=False)
        # Not save(): it would write back the last_t this request read.
        self.save(update_fields=["throttling_failure_timestamp", "throttling_failure_count"])
        return valid

    def get_throttle_factor(self):
        return getattr(settings, "OTP_TOTP_THROTTLE_FACTOR", 1)
