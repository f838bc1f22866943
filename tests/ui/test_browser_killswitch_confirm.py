"""The kill switch's confirm box in real Chromium: every way of typing HALT enables Engage.

Typing key by key, pasting (text inserted without key events, as a paste or an IME
composition commits it), pressing Tab or Enter after typing: Engage is enabled exactly
when the text is ``HALT``, and Enter engages at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import expect

from alphaswarm.paper.killswitch import kill_switch
from tests.ui.conftest import wait_until

if TYPE_CHECKING:
    from collections.abc import Callable

    from playwright.sync_api import Locator, Page

pytestmark = pytest.mark.ui


def open_confirm(page: Page, url: str) -> tuple[Locator, Locator]:
    """Load the dashboard, open the confirm box; return (text input, Engage button)."""
    page.goto(url)
    page.locator(".alphaswarm-ks-button button").wait_for(timeout=30_000)
    page.locator(".alphaswarm-ks-button button").click()
    expect(page.locator(".alphaswarm-ks-confirm-box")).to_be_visible(timeout=10_000)
    field = page.locator(".alphaswarm-ks-confirm-input input")
    confirm = page.locator(".alphaswarm-ks-confirm button")
    expect(confirm).to_be_disabled()
    return field, confirm


def key_by_key(page: Page, field: Locator, text: str) -> None:
    field.click()
    field.press_sequentially(text, delay=30)


def pasted(page: Page, field: Locator, text: str) -> None:
    field.click()
    page.keyboard.insert_text(text)  # no key events: what a paste or an IME commit does


def then_tab(page: Page, field: Locator, text: str) -> None:
    field.fill(text)
    field.press("Tab")


WAYS: dict[str, Callable[[Page, Locator, str], None]] = {
    "key_by_key": key_by_key,
    "pasted": pasted,
    "then_tab": then_tab,
}


@pytest.mark.parametrize("way", list(WAYS))
def test_every_way_of_typing_enables_engage(page, served, tmp_ledger, way):
    field, confirm = open_confirm(page, served)
    WAYS[way](page, field, "HALT")
    expect(confirm).to_be_enabled(timeout=5_000)
    # one more character: the text is no longer the word, Engage is disabled again
    field.click()
    field.press("End")
    field.press_sequentially("X")
    field.press("Tab")
    expect(confirm).to_be_disabled(timeout=5_000)
    assert not kill_switch().engaged


def test_enter_engages(page, served, tmp_ledger):
    field, _confirm = open_confirm(page, served)
    field.fill("HALT")
    field.press("Enter")
    wait_until(lambda: kill_switch().engaged, timeout=10)
    # the badge's update can queue behind a part of the page still being built (seconds
    # on a loaded machine): the switch itself engaged above
    expect(page.locator('[data-state="engaged"]')).to_be_visible(timeout=60_000)


def test_enter_with_the_wrong_word_does_not_engage(page, served, tmp_ledger):
    field, confirm = open_confirm(page, served)
    field.fill("HALTED")
    field.press("Enter")
    expect(confirm).to_be_disabled(timeout=5_000)
    expect(page.locator(".alphaswarm-ks-confirm-box")).to_be_visible()
    assert not kill_switch().engaged
