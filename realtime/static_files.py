"""WhiteNoise for static files, without a thread hop for every other request.

WhiteNoise's middleware is synchronous, so under ASGI Django would run every
request (the broadcast view included) through a worker thread and back. This
wrapper is async: only requests under ``STATIC_URL`` go to WhiteNoise, in a
thread; everything else goes straight on to the async stack.
"""

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from whitenoise.middleware import WhiteNoiseMiddleware


class StaticFilesMiddleware:
    sync_capable = False
    async_capable = True

    def __init__(self, get_response):
        assert iscoroutinefunction(get_response), "the app runs under ASGI"
        self.get_response = get_response
        markcoroutinefunction(self)
        self.prefix = "/" + settings.STATIC_URL.lstrip("/") if settings.STATIC_URL else None
        self.serve = sync_to_async(WhiteNoiseMiddleware(get_response=lambda request: None), thread_sensitive=False)

    async def __call__(self, request):
        if self.prefix and request.path_info.startswith(self.prefix):
            response = await self.serve(request)
            if response is not None:
                return response
        return await self.get_response(request)
