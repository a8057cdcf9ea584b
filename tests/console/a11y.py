"""The accessibility basics every console page must meet, checked in the real browser.

- the page says it is Dutch, has a title, a ``main`` landmark and exactly one ``h1``;
- every form field has an accessible name (a ``<label>``, ``aria-label`` or ``aria-labelledby``);
- every link and button has a name, ids are unique, and references to ids resolve;
- every chart (``svg[role=img]``) is named;
- keyboard: the first Tab reaches the skip link, and tabbing through the page reaches every visible
  link, button and field (one radio per group, as browsers do).
"""

from __future__ import annotations

from typing import Any

STATIC_CHECKS = r"""
() => {
  const problems = [];
  // checkVisibility also knows the content of a closed <details> is hidden.
  const visible = el => el.checkVisibility({visibilityProperty: true, contentVisibilityAuto: true});
  const byIds = ids => ids.split(/\s+/).filter(Boolean).map(id => document.getElementById(id));
  const nameOf = el => {
    const labelled = el.getAttribute('aria-labelledby');
    if (labelled) return byIds(labelled).map(n => n ? n.textContent : '').join(' ').trim();
    if (el.getAttribute('aria-label')) return el.getAttribute('aria-label').trim();
    if (el.labels && el.labels.length) return Array.from(el.labels).map(l => l.textContent).join(' ').trim();
    return '';
  };
  if (document.documentElement.lang !== 'nl') problems.push('html lang is not nl');
  if (!document.title.trim()) problems.push('the page has no title');
  if (document.querySelectorAll('main').length !== 1) problems.push('not exactly one main landmark');
  const h1 = document.querySelectorAll('h1');
  if (h1.length !== 1) problems.push(`${h1.length} h1 headings instead of one`);
  for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
    if (!nameOf(el)) problems.push(`field ${el.name || el.id} has no label`);
  }
  for (const el of document.querySelectorAll('a[href], button, summary')) {
    const name = (el.getAttribute('aria-label') || el.textContent || '').trim();
    if (!name) problems.push(`a ${el.tagName.toLowerCase()} without a name`);
  }
  for (const el of document.querySelectorAll('svg[role=img]')) {
    if (!nameOf(el)) problems.push('a chart without a name');
  }
  const seen = new Set();
  for (const el of document.querySelectorAll('[id]')) {
    if (seen.has(el.id)) problems.push(`duplicate id ${el.id}`);
    seen.add(el.id);
  }
  for (const attr of ['aria-describedby', 'aria-labelledby']) {
    for (const el of document.querySelectorAll(`[${attr}]`)) {
      for (const id of el.getAttribute(attr).split(/\s+/).filter(Boolean)) {
        if (!document.getElementById(id)) problems.push(`${attr} points at missing id ${id}`);
      }
    }
  }
  for (const el of document.querySelectorAll('label[for]')) {
    if (!document.getElementById(el.htmlFor)) problems.push(`label for missing id ${el.htmlFor}`);
  }
  // Number the actions a keyboard user must be able to reach, for the Tab walk that follows.
  let n = 0;
  const radioGroups = new Set();
  for (const el of document.querySelectorAll('a[href], button, input:not([type=hidden]), select, textarea, summary')) {
    if (!visible(el) || el.disabled) continue;
    if (el.type === 'radio') {
      if (radioGroups.has(el.name)) continue;
      radioGroups.add(el.name);
      for (const r of document.querySelectorAll(`input[type=radio][name="${CSS.escape(el.name)}"]`)) r.dataset.a11yGroup = String(n);
    }
    el.dataset.a11y = String(n++);
  }
  return {problems, actions: n};
}
"""

FOCUSED = r"""
() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  return {id: el.dataset.a11yGroup || el.dataset.a11y || null, text: (el.textContent || el.name || '').trim().slice(0, 40)};
}
"""

UNREACHED = r"""
(reached) => Array.from(document.querySelectorAll('[data-a11y]'))
  .filter(el => !reached.includes(el.dataset.a11yGroup || el.dataset.a11y))
  .map(el => `${el.tagName.toLowerCase()} "${(el.textContent || el.name || '').trim().slice(0, 40)}"`)
"""


def accessibility_problems(page: Any) -> list[str]:
    found = page.evaluate(STATIC_CHECKS)
    problems: list[str] = list(found["problems"])
    # Keyboard: start from the top of the document and Tab through it.
    page.evaluate("""() => {
      const start = document.createElement('span');
      start.tabIndex = -1;
      document.body.prepend(start);
      start.focus();
    }""")
    reached: set[str] = set()
    first = None
    # Date fields take a Tab per part (day, month, year): allow for them, stop once all are reached.
    for press in range(found["actions"] * 4 + 10):
        page.keyboard.press("Tab")
        focused = page.evaluate(FOCUSED)
        if focused is None:
            continue
        if press == 0:
            first = focused["text"]
        if focused["id"] is not None:
            reached.add(focused["id"])
        if len(reached) == found["actions"]:
            break
    if first != "Naar de inhoud":
        problems.append(f"the first Tab reaches {first!r}, not the skip link")
    missed = page.evaluate(UNREACHED, sorted(reached))
    if missed:
        problems.append("not reachable with Tab: " + ", ".join(missed))
    return problems
