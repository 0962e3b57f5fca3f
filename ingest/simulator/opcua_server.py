"""An OPC-UA server (asyncua) exposing simulator variables with engineering units and status codes."""

from __future__ import annotations

import logging
from typing import Any

from asyncua import Server, ua
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.user_managers import UserManager

from ingest.loop_thread import LoopThread

NAMESPACE_URI = "urn:insa:workbench:simulator"
UNECE_URI = "http://www.opcfoundation.org/UA/units/un/cefact"


class _Users(UserManager):
    """One username and password; anyone else is refused."""

    def __init__(self, credentials: tuple[str, str]) -> None:
        self.credentials = credentials

    def get_user(
        self, iserver: Any, username: str | None = None, password: str | None = None, certificate: Any = None
    ) -> User | None:
        """The user when the credentials match, else None (the session is refused)."""
        return User(role=UserRole.User) if (username, password) == self.credentials else None


class OpcUaServer:
    """Serves ``{name: (initial, unit)}`` as Double variables ``ns=2;s={name}`` from a background thread."""

    def __init__(
        self,
        port: int,
        variables: dict[str, tuple[float, str | None]],
        host: str = "127.0.0.1",
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self.credentials = credentials
        self.port, self.host = port, host
        self.variables = variables
        self.endpoint = f"opc.tcp://{host}:{port}/workbench/simulator"
        self.namespace = 2
        self._nodes: dict[str, Any] = {}
        self._server: Server | None = None
        self._loop_thread = LoopThread(f"opcua-server-{port}")

    def node_id(self, name: str) -> str:
        """The node id clients subscribe to for variable ``name``."""
        return f"ns={self.namespace};s={name}"

    async def _boot(self) -> None:
        server = Server(user_manager=_Users(self.credentials) if self.credentials else None)
        await server.init()
        if self.credentials:
            server.set_identity_tokens([ua.UserNameIdentityToken])
        server.set_endpoint(self.endpoint)
        server.set_server_name("INSA workbench plant simulator")
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        self.namespace = await server.register_namespace(NAMESPACE_URI)
        plant = await server.nodes.objects.add_object(f"ns={self.namespace};s=Plant", "Plant")
        for name, (initial, unit) in self.variables.items():
            node = await plant.add_variable(
                self.node_id(name), name, ua.Variant(float(initial), ua.VariantType.Double)
            )
            if unit:
                info = ua.EUInformation(
                    NamespaceUri=UNECE_URI,
                    UnitId=-1,
                    DisplayName=ua.LocalizedText(unit),
                    Description=ua.LocalizedText(unit),
                )
                await node.add_property(
                    0, "EngineeringUnits", ua.Variant(info, ua.VariantType.ExtensionObject)
                )
            self._nodes[name] = node
        await server.start()
        self._server = server

    def start(self) -> None:
        """Start serving; returns once clients can connect."""
        logging.getLogger("asyncua").setLevel(logging.WARNING)
        self._loop_thread.start(self._boot, timeout=30)

    def set(self, name: str, value: float, status: int = ua.StatusCodes.Good) -> None:
        """Write a value (with an OPC-UA status code) to variable ``name``."""
        data = ua.DataValue(
            ua.Variant(float(value), ua.VariantType.Double), StatusCode=ua.StatusCode(ua.UInt32(status))
        )
        self._loop_thread.call(self._nodes[name].write_value(data))

    def stop(self) -> None:
        """Stop the server (clients see the connection drop)."""
        if self._server is None:
            return
        self._loop_thread.stop(self._server.stop(), timeout=10)
        self._server = None
