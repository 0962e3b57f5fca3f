"""Single sign-on providers from settings, and the user an OpenID identity signs in as (role mapped)."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, insert, select, update

from workbench.auth.access import ActiveUser, end_access
from workbench.auth.passwords import hash_password
from workbench.auth.users import ROLES
from workbench.db.tables import users

DEFAULT_SCOPES = "openid email profile"


class SsoRefused(PermissionError):
    """The identity provider vouched for someone the workbench does not let in; the message says why."""


@dataclass(frozen=True)
class OidcProvider:
    """One OpenID provider: where it is, this app's client, and how its claim maps to roles."""

    name: str
    issuer: str
    client_id: str
    client_secret: str
    scopes: str = DEFAULT_SCOPES
    role_claim: str = "groups"
    roles: dict[str, str] = field(default_factory=dict)  # claim value -> workbench role
    default_role: str | None = "viewer"  # None: identities with no mapped value are refused

    @property
    def slug(self) -> str:
        """The provider's name as it appears in URLs."""
        return "".join(ch if ch.isalnum() else "-" for ch in self.name.lower()).strip("-") or "sso"

    def role_for(self, claims: dict[str, Any]) -> str:
        """The highest role any value of the role claim maps to, else the default; SsoRefused without one."""
        raw = claims.get(self.role_claim)
        values = raw if isinstance(raw, list) else [raw] if raw is not None else []
        mapped = {self.roles[str(value)] for value in values if str(value) in self.roles}
        for role in ROLES:  # ROLES runs from most to least privileged
            if role in mapped:
                return role
        if self.default_role is None:
            raise SsoRefused(f"no {self.role_claim} of this account is mapped to a workbench role")
        return self.default_role


def parse_providers(raw: str | None) -> list[OidcProvider]:
    """Providers from the ``WORKBENCH_OIDC_PROVIDERS`` JSON list; ValueError names what is wrong."""
    if not raw:
        return []
    try:
        items = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(f"not JSON ({error.msg})") from None
    if not isinstance(items, list):
        raise ValueError("expected a JSON list of providers")
    providers = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise ValueError(f"provider {index} is not an object")
        missing = [key for key in ("name", "issuer", "client_id", "client_secret") if not item.get(key)]
        if missing:
            raise ValueError(f"provider {index} lacks {', '.join(missing)}")
        unknown = set(item) - set(OidcProvider.__dataclass_fields__)
        if unknown:
            raise ValueError(f"provider {index}: unknown keys {', '.join(sorted(unknown))}")
        provider = OidcProvider(**item)
        bad = {
            role for role in [*provider.roles.values(), provider.default_role] if role and role not in ROLES
        }
        if bad:
            raise ValueError(
                f"provider {index}: roles must be among {', '.join(ROLES)}, not {', '.join(bad)}"
            )
        providers.append(provider)
    if len({p.slug for p in providers}) != len(providers):
        raise ValueError("provider names must differ")
    return providers


def sign_in_user(engine: Engine, provider: OidcProvider, claims: dict[str, Any]) -> ActiveUser:
    """The user ``claims`` sign in as (created at first, role from the claim each time), or SsoRefused."""
    email = str(claims.get("email") or "").strip().lower()
    if "@" not in email:
        raise SsoRefused("the provider sent no e-mail address (ask for the email scope)")
    if claims.get("email_verified") is False:
        raise SsoRefused("the provider has not verified this e-mail address")
    role = provider.role_for(claims)
    with engine.begin() as conn:
        row = conn.execute(select(users).where(users.c.email == email).with_for_update()).first()
        if row is None:
            # Nobody knows this password: the account signs in through its provider only.
            row = conn.execute(
                insert(users)
                .values(email=email, role=role, password_hash=hash_password(secrets.token_urlsafe(32)))
                .returning(users)
            ).one()
        elif row.disabled:
            raise SsoRefused("this account is disabled")
        elif row.role != role:
            end_access(conn, row.id)  # a new role ends what the old one held, as an admin's change would
            row = conn.execute(
                update(users).where(users.c.id == row.id).values(role=role).returning(users)
            ).one()
    return ActiveUser(id=row.id, email=row.email, role=row.role, token_version=row.token_version)
