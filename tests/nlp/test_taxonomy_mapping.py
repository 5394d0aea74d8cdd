"""Mapping texts onto the default taxonomy with the real shared encoder (int8 ONNX MiniLM)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from nlp.encoder import Encoder
from nlp.taxonomy import CaseTypeMapper, TaxonomyStore, load_taxonomy

REPO = Path(__file__).resolve().parents[2]
DEFAULT = REPO / "taxonomies" / "service_recovery.yaml"
EmbedFn = Callable[[list[str]], np.ndarray]

# Written for these tests, not among the taxonomy's examples: three per case type.
HELD_OUT: dict[str, list[str]] = {
    "billing_error": [
        "You took the payment twice from my card for one pizza.",
        "I'm being charged monthly for a plan I cancelled in January.",
        "The amount on my invoice doesn't match the price on my order confirmation.",
    ],
    "refund_not_received": [
        "It's been a month since you accepted my return and the money still isn't back.",
        "Where's the reimbursement you promised for the cancelled trip?",
        "still waiting on that refund, week four",
    ],
    "delivery_late_or_missing": [
        "My parcel was meant to come on Tuesday and there's still no sign of it.",
        "The app says my order was handed to me, but nothing was ever delivered.",
        "Shipping was supposed to take 3 days, it's been 12.",
    ],
    "wrong_or_incomplete_order": [
        "The bag contained someone else's shopping, not mine.",
        "I ordered two pairs of trousers but only one was in the parcel.",
        "You sent me the wrong size shoes.",
    ],
    "damaged_or_defective_product": [
        "The vacuum cleaner died after a week of use.",
        "My phone's battery swells and gets hot, it's faulty.",
        "The vase was shattered when I opened the box.",
    ],
    "service_outage": [
        "Is your site down? It won't load for me at all.",
        "Our broadband has been dead since Sunday.",
        "The mobile network has no coverage all day, nothing works.",
    ],
    "long_wait_or_hold": [
        "I spent an hour and a half waiting on the phone to speak to anyone.",
        "The line at the airport counter barely moved for 70 minutes.",
        "No reply to my emails for ten days.",
    ],
    "staff_rude_or_unhelpful": [
        "The cashier was really disrespectful and mocked my accent.",
        "Your agent literally yelled at me down the phone.",
        "The crew member was rude and dismissive when I asked for help.",
    ],
    "unresolved_after_contact": [
        "I've called you five times about this and nothing has changed.",
        "Every time I contact support they promise to fix it and it never happens.",
        "My complaint was marked resolved but I never got a solution.",
    ],
    "intent_to_cancel_or_switch": [
        "I'm going to move to a different bank after this.",
        "Please close my account, I don't want your service anymore.",
        "I'll be taking my custom to your competitor from now on.",
    ],
    "account_access": [
        "I can't sign in, it keeps saying my password is wrong even after resetting it.",
        "My account has been blocked and I can't get back in.",
        "The login code never arrives on my phone.",
    ],
    "price_or_fee_dispute": [
        "Charging 5 pounds just to pay by card is absurd.",
        "Why does it cost 60 dollars to change a seat?",
        "Your membership fee doubled overnight, that's not fair.",
    ],
    "website_or_app_confusing": [
        "I spent twenty minutes trying to find how to cancel an order in your app.",
        "Your website's navigation is a total mess, I can't find anything.",
        "The checkout page is so confusing I gave up twice.",
    ],
    "privacy_or_security_concern": [
        "Someone accessed my account and changed my email without my consent.",
        "You sold my phone number to marketers, I get spam calls every day now.",
        "I got a phishing email that looks exactly like it came from you.",
    ],
    "card_or_payment_declined": [
        "My card keeps getting declined when I try to pay online.",
        "The bank transfer I sent yesterday bounced back.",
        "My payment at the restaurant was rejected even though I have funds.",
    ],
    "booking_or_reservation_problem": [
        "The hotel said my reservation doesn't exist.",
        "I paid for my ticket but the booking never showed up in my account.",
        "You changed my booked seat without telling me.",
    ],
    "travel_delayed_or_cancelled": [
        "Our flight to Boston got cancelled an hour before boarding.",
        "The departure has been pushed back three times tonight.",
        "I missed my connecting flight because of your delay.",
    ],
    "lost_or_damaged_baggage": [
        "My luggage never arrived in Chicago.",
        "My suitcase came back with a huge crack in it.",
        "Airline lost my bag and I have nothing to wear.",
    ],
    "poor_service_quality": [
        "The cabin was dirty and the seat was broken.",
        "The in-flight entertainment didn't work and the meal was cold.",
        "The hotel room was dirty and the bathroom smelled awful.",
    ],
}
UNRELATED = [
    "what a lovely sunset",
    "the meeting is at 3pm",
    "My favourite colour is green.",
    "We adopted a puppy yesterday.",
    "The recipe calls for three eggs.",
]


@pytest.fixture(scope="module")
def embed(encoder: Encoder) -> EmbedFn:
    """Texts -> L2-normalised text vectors of the shared encoder."""
    return lambda texts: np.stack([e.text_unit for e in encoder.encode(texts)])


@pytest.fixture(scope="module")
def store(embed: EmbedFn) -> TaxonomyStore:
    return TaxonomyStore(embed)


@pytest.fixture(scope="module")
def mapper(store: TaxonomyStore) -> CaseTypeMapper:
    return store.mapper_for_file(DEFAULT)


class TestDefaultTaxonomyMapping:
    def test_held_out_texts_map_to_their_case_type(self, mapper: CaseTypeMapper) -> None:
        """Top case type is right for >= 80% of unseen texts, and for >= 1 of 3 of each type."""
        taxonomy_ids = {c.id for c in load_taxonomy(DEFAULT).case_types}
        assert set(HELD_OUT) <= taxonomy_ids
        for texts in HELD_OUT.values():
            assert not {t.casefold() for t in texts} & {
                e.casefold() for c in mapper.taxonomy.case_types for e in c.examples
            }
        right: dict[str, int] = {}
        for type_id, texts in HELD_OUT.items():
            for text in texts:
                found = mapper.map(text)["case_types"]
                right[type_id] = right.get(type_id, 0) + int(
                    bool(found) and found[0]["id"] == type_id
                )
        assert sum(right.values()) / sum(len(t) for t in HELD_OUT.values()) >= 0.8, right
        assert all(n >= 1 for n in right.values()), right

    def test_unrelated_texts_fit_no_case_type(self, mapper: CaseTypeMapper) -> None:
        """Small talk is not forced into a case type."""
        for text in UNRELATED:
            result = mapper.map(text)
            assert result["fits_no_case_type"], (text, result["case_types"])
            assert result["case_types"] == []

    def test_sentences_give_multi_label_with_evidence(
        self, mapper: CaseTypeMapper, encoder: Encoder
    ) -> None:
        """The analyzer's one-pass sentence vectors yield one type per complaint, with spans."""
        text = (
            "You charged me twice this month. When I called, your agent hung up on me. "
            "I'm switching to another provider."
        )
        spans = [(0, 32), (33, 73), (74, len(text))]
        encoding = encoder.encode([text], spans=[spans])[0]
        result = mapper.map(
            text,
            text_vector=encoding.text_unit,
            sentences=spans,
            sentence_vectors=encoding.span_units,
        )
        by_id = {c["id"]: c for c in result["case_types"]}
        assert {"billing_error", "staff_rude_or_unhelpful", "intent_to_cancel_or_switch"} <= set(
            by_id
        )
        assert result["taxonomy"] == {"name": "service_recovery", "version": "1.0.0"}
        rude = by_id["staff_rude_or_unhelpful"]
        assert 0.0 < rude["confidence"] <= 1.0
        assert rude["evidence"][0]["text"] == text[33:73]
        assert rude["evidence"][0]["source"] == "example"
        billing_sources = {e["source"] for e in by_id["billing_error"]["evidence"]}
        assert billing_sources == {"rule", "example"}  # "charged ... twice" is a token pattern


RULES_TAXONOMY = """\
name: rules
version: "{version}"
case_types:
  - id: refund
    name: Refund missing
    definition: A refund has not arrived.
    examples: ["I am still waiting for my refund", "where is my money back", "refund not received"]
    rules:
      exclude: ["gift card"]
  - id: outage
    name: Outage
    definition: The service is down.
    examples: ["the app is down", "website not loading", "no internet since yesterday"]
  - id: broadband
    name: Broadband outage
    parent: outage
    definition: Home internet is down.
    examples: {broadband_examples}
"""


class TestRulesHierarchyAndReload:
    def _write(self, path: Path, version: str, broadband: list[str]) -> None:
        path.write_text(
            RULES_TAXONOMY.format(version=version, broadband_examples=broadband), "utf-8"
        )

    def test_exclude_rule_vetoes_and_child_wins_over_parent(
        self, store: TaxonomyStore, tmp_path: Path
    ) -> None:
        """An exclude phrase removes the type; a child type is reported instead of its parent."""
        path = tmp_path / "rules.yaml"
        self._write(path, "1", ["my broadband router shows no connection", "home wifi is dead"])
        mapper = store.mapper_for_file(path)
        assert mapper.map("still waiting for my refund")["case_types"][0]["id"] == "refund"
        vetoed = mapper.map("still waiting for my refund on the gift card")
        assert "refund" not in {c["id"] for c in vetoed["case_types"]}
        found = mapper.map("my broadband has had no connection all day")["case_types"]
        assert found[0]["id"] == "broadband"
        assert found[0]["parent"] == "outage"
        assert "outage" not in {c["id"] for c in found}

    def test_editing_the_file_changes_the_mapping_without_restart(
        self, store: TaxonomyStore, tmp_path: Path
    ) -> None:
        """The same store picks up an edited file: a new version, a new mapping."""
        path = tmp_path / "reload.yaml"
        self._write(path, "1", ["my broadband router shows no connection", "home wifi is dead"])
        text = "the fibre cable to my house was cut and the landline hums"
        first = store.mapper_for_file(path)
        assert first.taxonomy.version == "1"
        self._write(path, "2", [text, "fibre line cut, no landline either", "copper line hums"])
        second = store.mapper_for_file(path)
        assert second.taxonomy.version == "2"
        assert second is not first
        assert second.map(text)["case_types"][0]["id"] == "broadband"
        assert store.mapper_for_file(path) is second  # unchanged file: no refit
