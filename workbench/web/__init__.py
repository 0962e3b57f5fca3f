"""The production web server: gunicorn's threaded worker, request-header guard, proxy and HTTPS headers."""
