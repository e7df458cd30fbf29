"""The web application's assembly: the Flask app (``app``: pygeoapi's blueprint beside the OGC
web services and the dashboard), request guards, access control, pygeoapi patches
(``compat``), the OpenAPI completion, vendored front-end assets and the dashboard.

Imports go one way: ``web`` uses :mod:`sentinelle.ows`, the providers and the processes;
none of them imports ``web``.
"""
