"""A minimal Django project in one module, served as WSGI: a greeting
(``/hello/?name=...``) and a form posted (``/form/``)."""

from __future__ import annotations

import django
from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path

settings.configure(
    DEBUG=False,
    SECRET_KEY="only-for-the-tests",
    ROOT_URLCONF=__name__,
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
    USE_TZ=True,
)


def hello(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"Hello, {request.GET.get('name', 'Django')}", content_type="text/plain")


def form(request: HttpRequest) -> JsonResponse:
    if request.method != "POST":
        return JsonResponse({"error": "POST only"}, status=405)
    return JsonResponse(
        {
            "fields": {key: request.POST.getlist(key) for key in request.POST},
            "path": request.path,
            "script_name": request.META["SCRIPT_NAME"],
        }
    )


urlpatterns = [path("hello/", hello), path("form/", form)]

django.setup()
application = get_wsgi_application()
