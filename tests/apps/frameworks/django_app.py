"""Django through its ASGI handler, in one module: settings, URLs and views. Django's ASGI handler
has no lifespan (it raises on the lifespan scope) and no WebSockets (that is Channels)."""

import asyncio
import os

import django
from django.conf import settings
from django.core.asgi import get_asgi_application
from django.http import HttpRequest, JsonResponse
from django.urls import path

settings.configure(
    DEBUG=False,
    SECRET_KEY="framework-matrix-test-only",
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=[],
    MIDDLEWARE=[],
    DATABASES={},
    USE_TZ=True,
)
django.setup()


async def hello(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"framework": "django", "pid": os.getpid(), "startup_ran": None})


async def slow(request: HttpRequest) -> JsonResponse:
    seconds = float(request.GET.get("s", "1"))
    started = request.GET.get("started")
    if started:
        with open(started, "w") as marker:
            marker.write(str(os.getpid()))
    await asyncio.sleep(seconds)
    return JsonResponse({"framework": "django", "pid": os.getpid(), "slept": seconds})


urlpatterns = [path("", hello), path("slow", slow)]

app = get_asgi_application()
