"""The REST API ``/api/v1``: blueprints, one module per resource, one error format."""
