from django.urls import path

from . import views

urlpatterns = [
    path("seal", views.seal),
    path("open", views.open_secret),
]
