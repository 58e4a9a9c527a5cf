"""Reaching apps: each Setup's address on an origin of its own, behind Port's sign-in.

``addresses`` names the origins, ``entry`` lets a Setup's owner in (single-use codes
from Port's origin, then a cookie of the app's origin), ``proxy`` relays HTTP and
websockets to the Setup's serving Pod, and ``front`` picks, per request, Port's own
pages or an app by the ``Host`` header. See docs/apps.md.
"""
