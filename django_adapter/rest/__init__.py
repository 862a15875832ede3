"""REST: an optional HTTP transport for the same sealed bundles.

A link (a laptop on the clinic's network, a hub whose uplink is up, a driver's
laptop pulling from a field laptop) carries exactly the files a USB stick would,
and an upload goes through the same verify -> dedupe -> import path.  Nothing in
this package knows a second format: it stores, verifies and hands over files.

Include it with ``path("bundles/", include("django_adapter.urls"))``; the
endpoints, the resume protocol and the status codes are in docs/REST.md.
"""
