"""TOTP two-factor login with django-otp, where the app never holds a
secret: the secrets are Fernet tokens that only fernet-sidecar opens
(docs/totp.md).

settings.py:

    INSTALLED_APPS = [
        ...
        "fernet_sidecar.django",
        "django_otp",
        "django_otp.plugins.otp_totp",   # only to import existing TOTPDevice keys
        "examples.totp_django",
    ]
    MIDDLEWARE = [..., "django.contrib.auth.middleware.AuthenticationMiddleware",
                  "django_otp.middleware.OTPMiddleware", ...]
    FERNET_SIDECAR = {"TARGET": "unix:///run/fernet/fernet.sock"}   # the sidecar backend: TOTP needs it
    OTP_TOTP_ISSUER = "Example"

urls.py: django_otp.views.LoginView (username, password and the code), as
examples/totp_django/urls.py does.

Enrol a user with SidecarTOTPDevice.enrol(user), show the provisioning URI
once as a QR code, and confirm the device with its first code. Existing
django-otp TOTPDevice keys move into tokens with
`manage.py import_totp_devices`.
"""
