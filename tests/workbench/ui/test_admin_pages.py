"""The admin pages as an admin uses them: users, quarantine, service tokens; and who may open them."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import func, insert, select, update

from tests.workbench.auth.test_users import only_admins
from tests.workbench.ui.conftest import Plant, open_admin, shot
from tests.workbench.ui.test_a11y import axe, scan
from tests.workbench.ui.test_pages import choose
from workbench.auth import service_tokens
from workbench.auth.users import find_user
from workbench.db.tables import devices, quarantine, telemetry
from workbench.db.tables import service_tokens as service_tokens_table

pytestmark = [pytest.mark.slow, pytest.mark.chromium]
__all__ = ["axe"]  # the axe-core fixture, used here too


def sign_in(browser: Browser, base: str, email: str, password: str) -> Page:
    """A fresh browser context at the login form, the form filled and sent."""
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.goto(f"{base}/ui/")
    expect(page).to_have_url(re.compile(r"/login"))
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("#login")
    return page


def pick_row(page: Page, grid: str, text: str) -> None:
    """Select the grid row showing ``text`` by clicking it."""
    page.locator(grid).locator(".ag-row", has_text=text).first.locator(".ag-cell").nth(2).click()


def test_admin_adds_a_user_changes_their_role_resets_and_disables_them(
    plant: Plant, login: Callable[..., Page], browser: Browser
) -> None:
    admin = login("admin")
    admin.goto(f"{plant.base}/ui/users")
    email = f"new-{uuid.uuid4().hex[:6]}@example.com"
    admin.fill("#user-email", email)
    admin.fill("#user-password", "first-passw0rd")
    admin.click("#user-create")
    expect(admin.locator("#user-created")).to_contain_text(f"Added {email} as viewer")
    expect(admin.locator("#users-grid")).to_contain_text(email)

    # The new user logs in: a viewer, without the Rules or admin pages.
    user = sign_in(browser, plant.base, email, "first-passw0rd")
    expect(user.locator("#who")).to_contain_text(f"{email} · viewer")
    expect(user.locator("#nav-rules")).to_have_count(0)
    expect(user.locator("#nav-users")).to_have_count(0)
    user.goto(f"{plant.base}/ui/rules")
    expect(user.locator("#forbidden")).to_be_visible()

    # Another role: their session ends at once; signed in again, the engineer opens Rules.
    pick_row(admin, "#users-grid", email)
    choose(admin, "#user-new-role", "engineer")
    admin.click("#user-set-role")
    expect(admin.locator("#user-done")).to_contain_text(f"{email} is now engineer")
    user.goto(f"{plant.base}/ui/rules")
    expect(user).to_have_url(re.compile(r"/login"))
    user.fill("#email", email)
    user.fill("#password", "first-passw0rd")
    user.click("#login")
    expect(user.locator("#who")).to_contain_text("engineer")
    user.goto(f"{plant.base}/ui/rules")
    expect(user.locator("#rules-grid")).to_be_visible()

    # A reset password is shown once and works; the old one no longer does.
    admin.click("#user-reset")
    new_password = admin.locator("#user-new-password").input_value()
    assert len(new_password) >= 12
    shot(admin, "admin-users")
    again = sign_in(browser, plant.base, email, "first-passw0rd")
    expect(again.locator(".alert-danger")).to_contain_text("Wrong e-mail or password")
    again = sign_in(browser, plant.base, email, new_password)
    expect(again.locator("#who")).to_contain_text("engineer")

    # Disabled: the open session ends and the login is refused.
    admin.click("#user-disable")
    expect(admin.locator("#user-done")).to_contain_text(f"{email} is disabled")
    expect(admin.locator(".ag-row", has_text=email).locator("[col-id=status]")).to_have_text("disabled")
    again.goto(f"{plant.base}/ui/")
    expect(again).to_have_url(re.compile(r"/login"))
    refused = sign_in(browser, plant.base, email, new_password)
    expect(refused.locator(".alert-danger")).to_contain_text("Wrong e-mail or password")
    stored = find_user(plant.platform.engine, email)
    assert stored is not None and stored["disabled"] and stored["role"] == "engineer"

    # Deleted, after the browser's confirmation.
    admin.once("dialog", lambda dialog: dialog.accept())
    admin.click("#user-delete-button")
    expect(admin.locator("#user-done")).to_have_text("User deleted.")
    expect(admin.locator("#users-grid")).not_to_contain_text(email)
    assert find_user(plant.platform.engine, email) is None


def test_the_last_admin_cannot_demote_or_disable_themselves(plant: Plant, login: Callable[..., Page]) -> None:
    email = plant.users["admin"][0]
    found = find_user(plant.platform.engine, email)
    assert found is not None
    admin = login("admin")
    with only_admins(plant.platform.engine, found["id"]):
        admin.goto(f"{plant.base}/ui/users")
        pick_row(admin, "#users-grid", email)
        choose(admin, "#user-new-role", "viewer")
        admin.click("#user-set-role")
        expect(admin.locator("#user-failed")).to_contain_text("the last active admin cannot be demoted")
        admin.click("#user-disable")
        expect(admin.locator("#user-failed")).to_contain_text("the last active admin cannot be disabled")
        shot(admin, "admin-users-last-admin")
    stored = find_user(plant.platform.engine, email)
    assert stored is not None and stored["role"] == "admin" and not stored["disabled"]


def _token(base: str, email: str, password: str) -> str:
    answer = requests.post(
        f"{base}/api/v1/auth/login", json={"email": email, "password": password}, timeout=10
    )
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["access_token"]
    return token


def test_quarantined_points_are_listed_filtered_fixed_and_replayed(
    plant: Plant, login: Callable[..., Page]
) -> None:
    engine = plant.platform.engine
    device_id = uuid.uuid4()
    name = f"Mixer M-{uuid.uuid4().hex[:4]}"
    with engine.begin() as conn:
        conn.execute(
            insert(devices).values(id=device_id, name=name, type="mixer", status="offline", config={})
        )
    # Through the real HTTP ingest: a text value for a key not declared text, and a value out of range.
    bearer = {"Authorization": f"Bearer {_token(plant.base, *plant.users['engineer'])}"}
    points = [
        {"device_id": str(device_id), "key": "mode", "value": "auto"},
        {"device_id": str(device_id), "key": "speed", "value": 1e200},
    ]
    answer = requests.post(f"{plant.base}/api/v1/telemetry", json=points, headers=bearer, timeout=30)
    assert answer.status_code == 200 and answer.json()["rejected"] == 2, answer.text

    page = login("admin")
    page.goto(f"{plant.base}/ui/quarantine")
    choose(page, "#q-device", name)
    grid = page.locator("#quarantine-grid")
    expect(grid.locator(".ag-center-cols-container .ag-row")).to_have_count(2)
    expect(grid).to_contain_text("string value for 'mode', which is not declared text")
    expect(grid).to_contain_text("value of 'speed' beyond the magnitude bound")
    page.fill("#q-reason", "MAGNITUDE bound")
    page.keyboard.press("Enter")
    expect(grid.locator(".ag-center-cols-container .ag-row")).to_have_count(1)
    expect(grid).not_to_contain_text("declared text")
    shot(page, "admin-quarantine")

    # Still invalid: replaying keeps it, with its reason.
    pick_row(page, "#quarantine-grid", "value of 'speed' beyond the magnitude bound")
    page.click("#q-replay")
    expect(page.locator("#q-done")).to_contain_text("Replayed 0 item(s)")
    expect(page.locator("#q-done")).to_contain_text("1 still rejected")

    # The fix (declare 'mode' as text), then replay the selected row: it lands in telemetry.
    with engine.begin() as conn:
        conn.execute(update(devices).where(devices.c.id == device_id).values(config={"text_keys": ["mode"]}))
    page.fill("#q-reason", "declared text")
    page.keyboard.press("Enter")
    expect(grid).not_to_contain_text("magnitude")
    pick_row(
        page, "#quarantine-grid", "string value for 'mode', which is not declared text (config.text_keys)"
    )
    page.click("#q-replay")
    expect(page.locator("#q-done")).to_contain_text("Replayed 1 item(s), 1 point(s) written to telemetry")
    expect(grid.locator(".ag-center-cols-container .ag-row")).to_have_count(0)
    with engine.connect() as conn:
        stored = conn.execute(
            select(telemetry).where(telemetry.c.device_id == device_id, telemetry.c.key == "mode")
        ).all()
        waiting = conn.execute(
            select(quarantine.c.reason).where(
                quarantine.c.device_id == str(device_id), quarantine.c.replayed_at.is_(None)
            )
        ).scalars()
        assert [reason[:43] for reason in waiting] == ["value of 'speed' beyond the magnitude bound"]
    assert len(stored) == 1


def test_a_service_token_made_in_the_ui_reads_the_api_until_revoked(
    plant: Plant, login: Callable[..., Page]
) -> None:
    # The newest token so far has been used: the grid's first row shows a time, the new one's "never".
    used, _ = service_tokens.create(
        plant.platform.engine,
        f"used {uuid.uuid4().hex[:6]}",
        ["devices:read"],
        datetime.now(UTC) + timedelta(days=1),
        None,
    )
    with plant.platform.engine.begin() as conn:
        conn.execute(
            update(service_tokens_table).where(service_tokens_table.c.id == used).values(last_used=func.now())
        )
    page = login("admin")
    page.goto(f"{plant.base}/ui/service-tokens")
    name = f"Grafana {uuid.uuid4().hex[:6]}"
    page.fill("#token-name", name)
    choose(page, "#token-scopes", "devices:read")
    page.fill("#token-days", "30")
    page.click("#token-create")
    raw = page.locator("#token-secret").input_value()
    assert raw.startswith("wbs_")
    expect(page.locator("#token-name")).to_have_value("")
    row = page.locator(".ag-row", has_text=name)
    expect(row.locator("[col-id=last_used]")).to_have_text("never")
    expect(row.locator("[col-id=scopes]")).to_have_text("devices:read, telemetry:read")

    bearer = {"Authorization": f"Bearer {raw}"}
    listed = requests.get(f"{plant.base}/api/v1/devices", headers=bearer, timeout=10)
    assert listed.status_code == 200 and listed.json()["total"] >= 2
    # Read scopes only: the token cannot manage users, nor write.
    assert requests.get(f"{plant.base}/api/v1/users", headers=bearer, timeout=10).status_code == 403

    page.reload()
    row = page.locator(".ag-row", has_text=name)
    expect(row.locator("[col-id=last_used]")).not_to_have_text("never")
    expect(row.locator("[col-id=status]")).to_have_text("valid")
    shot(page, "admin-service-tokens")
    page.locator("#tokens-grid").get_by_text(name).click()
    page.click("#token-revoke")
    expect(page.locator("#token-done")).to_contain_text(f"Token {name} revoked")
    expect(row.locator("[col-id=status]")).to_have_text("revoked")
    refused = requests.get(f"{plant.base}/api/v1/devices", headers=bearer, timeout=10)
    assert refused.status_code == 401


ADMIN_LINKS = {
    "users": "#nav-users",
    "quarantine": "#nav-quarantine",
    "service-tokens": "#nav-service-tokens",
}
# Who opens which admin page: the role matrix (users:manage for users and tokens, quarantine:read).
OPENS: dict[str, set[str]] = {
    "admin": {"users", "quarantine", "service-tokens"},
    "engineer": {"quarantine"},
    "operator": set(),
    "viewer": set(),
}
MARKS = {"users": "#users-grid", "quarantine": "#quarantine-grid", "service-tokens": "#tokens-grid"}


@pytest.mark.parametrize("role", ["engineer", "operator", "viewer"])
def test_admin_pages_follow_the_role_matrix(plant: Plant, login: Callable[..., Page], role: str) -> None:
    page = login(role)
    # The Admin menu shows when the role opens any admin page (engineers: Devices, Quarantine).
    expect(page.locator("#nav-admin")).to_have_count(1 if role == "engineer" else 0)
    for path, link in ADMIN_LINKS.items():
        allowed = path in OPENS[role]
        expect(page.locator(link)).to_have_count(1 if allowed else 0)
        if allowed:
            open_admin(page, link)
            expect(page).to_have_url(re.compile(f"/ui/{path}$"))
            expect(page.locator(MARKS[path])).to_be_visible()
        else:
            page.goto(f"{plant.base}/ui/{path}")
            expect(page.locator("#forbidden")).to_contain_text(f"Your role ({role}) may not open this page")
            expect(page.locator(MARKS[path])).to_have_count(0)
        page.goto(f"{plant.base}/ui/")
    if role == "engineer":  # the matrix gives engineers quarantine:replay too
        page.goto(f"{plant.base}/ui/quarantine")
        expect(page.locator("#q-replay")).to_be_visible()


def test_admin_pages_pass_axe_light_and_dark(plant: Plant, login: Callable[..., Page], axe: Path) -> None:
    problems: dict[str, object] = {}
    titles = {"users": "Users", "quarantine": "Quarantine", "service-tokens": "Service tokens"}
    for dark in (False, True):
        page = login("admin")
        if dark:
            page.locator("#theme-dark").check()
            expect(page.locator("html")).to_have_attribute("data-bs-theme", "dark")
        for path, title in titles.items():
            page.goto(f"{plant.base}/ui/{path}")
            expect(page.locator(MARKS[path])).to_be_visible()
            expect(page).to_have_title(f"{title} · IIoT Workbench")
            found = scan(page, axe)
            if found:
                problems[f"{path} ({'dark' if dark else 'light'})"] = found
    assert problems == {}, problems
