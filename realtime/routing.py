from django.urls import re_path

from realtime.consumers import SessionConsumer

websocket_urlpatterns = [
    re_path(r"^ws/(?P<session_id>[^/]{1,64})/$", SessionConsumer.as_asgi()),
]
