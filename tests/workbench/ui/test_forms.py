"""The rules form: warns on keys a device never sent, refuses a second rule of a name, clears after create."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import func, select

from tests.workbench.ui.conftest import Plant
from tests.workbench.ui.test_pages import choose
from workbench.db.tables import rules

pytestmark = [pytest.mark.slow, pytest.mark.chromium]


def test_rule_form_warns_refuses_duplicates_and_clears(plant: Plant, login: Callable[..., Page]) -> None:
    page = login("engineer")
    page.goto(f"{plant.base}/ui/rules")
    name = f"Pump pressure {uuid.uuid4().hex[:6]}"
    choose(page, "#rule-device", "Pump P-101")
    page.fill("#rule-key", "presure")
    expect(page.locator("#rule-key-hint")).to_contain_text("never sent 'presure'")
    expect(page.locator("#rule-key-hint")).to_contain_text("pressure")
    page.fill("#rule-key", "pressure")
    expect(page.locator("#rule-key-hint")).to_have_text("")
    page.fill("#rule-name", name)
    page.fill("#rule-value", "9")
    page.fill("#rule-message", "Pressure above 9 bar")
    page.click("#rule-create")
    expect(page.locator("#rule-created")).to_contain_text("Rule created")
    for field in ("#rule-name", "#rule-key", "#rule-value", "#rule-message"):
        expect(page.locator(field)).to_have_value("")
    # The same name again (other case, extra spaces) is refused, and nothing is stored.
    page.fill("#rule-name", f"  {name.upper()} ")
    page.fill("#rule-key", "pressure")
    page.fill("#rule-value", "10")
    page.click("#rule-create")
    expect(page.locator("#rule-create-result")).to_contain_text("rules need distinct names")
    expect(page.locator("#rule-name")).to_have_value(f"  {name.upper()} ")
    with plant.platform.engine.connect() as conn:
        count = conn.execute(
            select(func.count()).where(func.lower(rules.c.name) == name.lower())
        ).scalar_one()
    assert count == 1
