"""Recording a contact with the keyboard alone: Tab, typing, arrow keys and Enter; no clicks, no
fill (issue 9 items 4 and 5: keyboard-only use with a visible focus)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page

from tests.ui.support import Site, Ui, unique

pytestmark = pytest.mark.slow

# Bound on Tab presses to reach one control: a page that needs more traps or loses the focus.
MAX_TABS = 150

DESCRIBE_FOCUS = """() => {
    const e = document.activeElement;
    if (!e || e === document.body) return 'nothing';
    return `${e.tagName.toLowerCase()}[name=${e.getAttribute('name')}]`
        + `[href=${e.getAttribute('href')}] "${(e.innerText || e.value || '').slice(0, 40)}"`;
}"""
# A focus indicator: an outline, or a box shadow (a ring), drawn while the element has the focus.
FOCUS_VISIBLE = """() => {
    const style = getComputedStyle(document.activeElement);
    const outline = style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0;
    return outline || style.boxShadow !== 'none';
}"""


def tab_until(page: Page, condition: str, what: str) -> None:
    """Press Tab until ``condition`` (a JS predicate of the focused element) holds; the focus
    must show where it is."""
    visited = []
    for _ in range(MAX_TABS):
        page.keyboard.press("Tab")
        if page.evaluate(
            f"() => {{ const e = document.activeElement; return !!e && ({condition}); }}"
        ):
            assert page.evaluate(FOCUS_VISIBLE), f"{what} has the focus but shows no focus ring"
            return
        visited.append(page.evaluate(DESCRIBE_FOCUS))
    raise AssertionError(f"Tab never reached {what}; it went through {visited[-20:]}")


def choose_with_arrows(page: Page, value: str) -> None:
    """The focused select or radio group takes ``value`` through arrow keys alone."""
    kind: str = page.evaluate("() => document.activeElement.type || ''")
    # A select does not wrap round: go up when the wanted option lies above the chosen one.
    above: bool = page.evaluate(
        "v => { const e = document.activeElement; if (e.tagName !== 'SELECT') return false;"
        " const i = Array.from(e.options).findIndex(o => o.value === v);"
        " return i >= 0 && i < e.selectedIndex; }",
        value,
    )
    for _ in range(30):
        current = page.evaluate(
            "() => { const e = document.activeElement;"
            " return e.type === 'radio' ? (e.checked ? e.value : null) : e.value; }"
        )
        if current == value:
            return
        page.keyboard.press("ArrowUp" if above else "ArrowDown")
    raise AssertionError(f"arrow keys never chose {value!r} in the focused {kind} control")


def type_into(page: Page, name: str, text: str) -> None:
    tab_until(page, f"e.name === {name!r}", f"the {name} field")
    page.keyboard.type(text)


def test_record_a_contact_with_the_keyboard_alone(ui: Ui, site: Site) -> None:
    partner = site.partner(unique("Hillside Seniors Network"))
    page = ui.page
    ui.goto(f"/partners/{partner}")

    # From the partner page to the form, by Tab and Enter.
    target = f"/partners/{partner}/record/contact_made"
    tab_until(
        page,
        f"e.tagName === 'A' && (e.getAttribute('href') || '').endsWith({target!r})",
        "the link to record a contact",
    )
    with page.expect_navigation():
        page.keyboard.press("Enter")
    ui.audit()
    assert urlsplit(page.url).path == target, page.url

    summary = unique("Called to invite them to the town hall")
    for name, value in [("channel", "phone"), ("direction", "outbound")]:
        tab_until(page, f"e.name === {name!r}", f"the {name} choice")
        choose_with_arrows(page, value)
    type_into(page, "summary", summary)
    tab_until(
        page,
        "(e.tagName === 'BUTTON' || e.type === 'submit') && /Record/.test(e.innerText || e.value)",
        "the Record button",
    )
    with page.expect_navigation():
        page.keyboard.press("Enter")
    ui.audit()

    assert urlsplit(page.url).path == f"/partners/{partner}", page.url
    assert summary in page.locator("#timeline").inner_text()
    [contact] = site.timeline(partner, types="contact_made")
    data = contact["data"]
    assert (data["channel"], data["direction"], data["summary"]) == ("phone", "outbound", summary)
