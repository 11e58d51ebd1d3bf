"""Textual's footer, recomposed only when the keys it shows change.

The stock footer rebuilds its key widgets on every focus change and screen switch; after closing
the reject dialog that alone cost more than recording the decision.
"""

from __future__ import annotations

from typing import Any

from textual.screen import Screen
from textual.widgets import Footer


class KeyFooter(Footer):
    _shown_keys: tuple[tuple[str, str, bool], ...] | None = None

    def bindings_changed(self, screen: Screen[Any]) -> None:
        shown = tuple(
            (binding.key, binding.description, enabled)
            for _node, binding, enabled, _tooltip in screen.active_bindings.values()
            if binding.show
        )
        if shown == self._shown_keys:
            return
        if screen.app.app_focus and self.is_attached and screen is self.screen:
            self._shown_keys = shown  # super() recomposes now
        super().bindings_changed(screen)
