"""Pushed protocols: devices send, the platform decodes (MQTT JSON, Sparkplug B, HTTP, and plugins).

Each protocol is one :class:`~ingest.push.base.PushCodec` registered in the plugin registry under the
``codec`` kind (:mod:`ingest.push.registry`), as polled protocols are ``connector`` plugins.
"""
