from django.core.management.base import BaseCommand
from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice

from fernet_sidecar.django.conf import fernet as sidecar
from examples.totp_django.models import SidecarTOTPDevice


class Command(BaseCommand):
    help = (
        "Moves django-otp TOTPDevice keys, stored in plaintext, into SidecarTOTPDevice tokens that only "
        "fernet-sidecar opens, and deletes the TOTPDevice rows. Devices with a t0 other than 0 are left as they are."
    )

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=500, help="devices per transaction (default 500)")

    def handle(self, *args, batch_size, **options):
        moved = 0
        while True:
            with transaction.atomic():
                devices = list(TOTPDevice.objects.select_for_update().filter(t0=0).order_by("pk")[:batch_size])
                if not devices:
                    break
                # The key is encrypted as it is stored, as hex text.
                tokens = sidecar().encrypt_many([device.key.encode("ascii") for device in devices])
                SidecarTOTPDevice.objects.bulk_create(
                    SidecarTOTPDevice(
                        user_id=device.user_id,
                        name=device.name,
                        confirmed=device.confirmed,
                        token=token.decode("ascii"),
                        encoding="hex",
                        step=device.step,
                        digits=device.digits,
                        # The sidecar keeps no drift: widen the window to
                        # cover it, up to VerifyTOTP's 10 steps.
                        tolerance=min(10, max(device.tolerance, abs(device.drift))),
                        last_t=device.last_t,
                    )
                    for device, token in zip(devices, tokens)
                )
                TOTPDevice.objects.filter(pk__in=[device.pk for device in devices]).delete()
                moved += len(devices)
        left = TOTPDevice.objects.count()
        self.stdout.write("moved %d TOTP devices into tokens; %d left (t0 != 0)" % (moved, left))
