"""The cheap English-or-undetermined guess."""

from __future__ import annotations

import pytest

from nlp.language import guess_language


class TestGuessLanguage:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("I want a refund for the broken kettle you sent me.", "en"),
            ("Great app!!", "en"),
            ("Das Paket ist nicht angekommen und ich bin sehr enttäuscht.", "und"),
            ("Le colis n'est pas arrivé et je suis très déçu.", "und"),
            ("荷物が届きません", "und"),
            ("12345 !!!", "und"),
        ],
    )
    def test_guess(self, text: str, expected: str) -> None:
        """English comes out en; other languages and letterless texts undetermined."""
        assert guess_language(text) == expected
