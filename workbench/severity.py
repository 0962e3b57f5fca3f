"""Alert severities, declared once (a leaf module: notebook kernels import it without the platform)."""

from __future__ import annotations

# Mildest first; rules, alerts, notebooks, Socket.IO filters and the pages all take their list from here.
SEVERITIES = ("info", "warning", "critical")
