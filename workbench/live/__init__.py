"""Live events: the in-process event bus and the Socket.IO fan-out."""
