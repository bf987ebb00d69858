from django.urls import path
from django_otp.views import LoginView

urlpatterns = [
    # Username, password and code in one form: django-otp's
    # OTPAuthenticationForm, which asks each of the user's devices.
    path("login/", LoginView.as_view(), name="login"),
]
