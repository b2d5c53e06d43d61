"""RulesVerifier on pairs written for these tests (never taken from the tuning files).

Each case is (cached prompt, new prompt); the distance passed is a plausible embedding
distance for such a pair. Minimal contrasts are decided by the rules at any distance;
reworded pairs are accepted only within ``reworded_max_distance``.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from llmemo.errors import ConfigurationError, MissingDependencyError
from llmemo.verify import Candidate, HitVerifier, RulesVerifier
from llmemo.verify import rules as rules_module


def decide(cached: str, new: str, distance: float = 0.1, **options: object) -> tuple[bool, str]:
    verifier = RulesVerifier(**options)  # type: ignore[arg-type]
    stored = json.loads(json.dumps(verifier.signature(cached)))  # as stored in an entry
    verdict = verifier.decide(new, verifier.signature(new), Candidate("e", distance, stored))
    return verdict.accepted, verdict.reason


def assert_rejected(cached: str, new: str, expected: str, **options: object) -> None:
    accepted, reason = decide(cached, new, **options)
    assert not accepted, f"served {new!r} for {cached!r} ({reason})"
    assert expected in reason, reason
    # A miss both ways round: the check is symmetric.
    accepted, reason = decide(new, cached, **options)
    assert not accepted, f"served {cached!r} for {new!r} ({reason})"


def assert_accepted(cached: str, new: str, **options: object) -> None:
    accepted, reason = decide(cached, new, **options)
    assert accepted, f"refused {new!r} for {cached!r}: {reason}"


NUMBERS = [
    ("Can I bring 2 bags on the plane?", "Can I bring 3 bags on the plane?"),
    (
        "Charge the battery to 80% before storing it?",
        "Charge the battery to 100% before storing it?",
    ),
    ("Where is order 55123?", "Where is order 55132?"),
    ("Book a table for four people", "Book a table for five people"),
    ("How many calories are in one banana?", "How many calories are in two bananas?"),
    ("Is a 10GB plan enough for streaming?", "Is a 100GB plan enough for streaming?"),
    ("Can a 16-year-old open a bank account?", "Can a 15-year-old open a bank account?"),
    ("Who won the league in 1998?", "Who won the league in 1999?"),
    ("Take one tablet every 6 hours", "Take one tablet every 8 hours"),
    ("Is my second payment late?", "Is my third payment late?"),
]

SAME_NUMBERS = [
    ("Book a table for four people", "Book a table for 4 people"),
    ("Is the parcel delivered within 48 hours?", "Is the parcel delivered within two days?"),
    ("Can I return it within 14 days?", "Can I return it within a fortnight?"),
    ("Is a 10GB plan enough for streaming?", "Is a 10 GB plan enough for streaming?"),
    ("How long do I boil a 1kg ham?", "How long do I boil a 1 kilo ham?"),
    ("Set an alarm for twenty-five past six", "Set an alarm for 25 past 6"),
]

CURRENCIES = [
    ("Can I withdraw £200 from a cash machine?", "Can I withdraw €200 from a cash machine?"),
    ("What is 5% of 80 euros?", "What is 5% of 80 dollars?"),
    ("Convert 50 GBP to USD", "Convert 50 GBP to EUR"),
    ("Is there a fee on transfers of $500?", "Is there a fee on transfers of $5,000?"),
    ("Send £1.50 to the kitty", "Send £15 to the kitty"),
]

SAME_CURRENCIES = [
    ("Is there a fee on transfers of $500?", "Is there a fee on transfers of 500 dollars?"),
    ("Send 20 quid to Tom", "Send £20 to Tom"),
    ("Is a 50p coin still legal tender?", "Is a fifty pence coin still legal tender?"),
    ("How much is £2k in euros?", "How much is £2,000 in euros?"),
]

DATES = [
    ("Is the gym open on Tuesday?", "Is the gym open on Thursday?"),
    ("Can I book a taxi for 6pm?", "Can I book a taxi for 6am?"),
    ("What's the weather tomorrow in Leeds?", "What's the weather today in Leeds?"),
    ("Are you open in August?", "Are you open in September?"),
    ("Can I visit at the weekend?", "Can I visit on a weekday?"),
    ("Is the bin collected next week?", "Is the bin collected this week?"),
    ("Do you deliver on Christmas Day?", "Do you deliver on Boxing Day?"),
    ("Is the 7:45 bus running?", "Is the 8:45 bus running?"),
]

SAME_DATES = [
    ("Is the gym open on Tuesdays?", "Is the gym open on a Tuesday?"),
    ("Wake me up at 6 in the morning", "Wake me up at 6am"),
    ("Is the talk at 3pm?", "Is the talk at 15:00?"),
    ("Is the bakery open on Satuday?", "Is the bakery open on Saturday?"),
]

NEGATIONS = [
    ("Can I park here?", "Can't I park here?"),
    ("Can I park here?", "Can I not park here?"),
    ("Can I park here?", "Can I never park here?"),
    ("Can I enter the UK with a passport?", "Can I enter the UK without a passport?"),
    ("Which rooms have air conditioning?", "Which rooms don't have air conditioning?"),
    ("Which rooms have air conditioning?", "Which rooms have no air conditioning?"),
    ("Why is the printer printing?", "Why isn't the printer printing?"),
]

SAME_NEGATIONS = [
    ("Which rooms don't have air conditioning?", "Which rooms do not have air conditioning?"),
    ("Why can't I log in?", "Why cannot I log in?"),
    ("Which fees aren't included in the rent?", "Which fees are excluded from the rent?"),
    ("What's the price for non-residents?", "What's the price if I'm not a resident?"),
]

ANTONYMS = [
    ("How do I activate my SIM card?", "How do I deactivate my SIM card?"),
    ("Is this supplement legal in Japan?", "Is this supplement illegal in Japan?"),
    ("Is the charger compatible with my laptop?", "Is the charger incompatible with my laptop?"),
    ("How do I switch on the heating?", "How do I switch off the heating?"),
    ("How do I log in to the portal?", "How do I log out of the portal?"),
    ("Which seats are the cheapest?", "Which seats are the most expensive?"),
    ("How do I upload a photo?", "How do I download a photo?"),
    ("Should I arrive early for my interview?", "Should I arrive late for my interview?"),
    ("Is postage free on orders over £40?", "Is postage free on orders under £40?"),
    ("Can I cancel before the course starts?", "Can I cancel after the course starts?"),
    ("How do I approve an expense claim?", "How do I reject an expense claim?"),
    ("What are the advantages of solar panels?", "What are the disadvantages of solar panels?"),
    ("How do I follow a channel?", "How do I unfollow a channel?"),
    ("Is the cleaning spray harmful to pets?", "Is the cleaning spray harmless to pets?"),
    ("Which bins are collected in summer?", "Which bins are collected in winter?"),
]

ENTITIES = [
    ("What time does the Tesco in Bath close?", "What time does the Tesco in Wells close?"),
    ("Is Spotify included in the bundle?", "Is Netflix included in the bundle?"),
    ("Does the API support OAuth?", "Does the API support SAML?"),
    ("What's Emma's email address?", "What's Oliver's email address?"),
    ("How do I install Python on Windows?", "How do I install Python on macOS?"),
]

DIRECTIONS = [
    ("How do I convert JPG to PNG?", "How do I convert PNG to JPG?"),
    ("Transfer $100 from checking to savings", "Transfer $100 from savings to checking"),
    ("How long is the train from Leeds to York?", "How long is the train from York to Leeds?"),
    ("Is Rust faster than Go?", "Is Go faster than Rust?"),
    ("Translate this from French into German", "Translate this from German into French"),
    ("Move the meeting from Monday to Friday", "Move the meeting from Friday to Monday"),
]

DETAILS = [
    ("What does my travel insurance cover?", "What does my pet insurance cover?"),
    ("How do I reset my password?", "How do I reset my child's password?"),
    ("What's the delivery charge?", "What's the express delivery charge?"),
    ("Do you sell gluten-free bread?", "Do you sell gluten-free cake?"),
]

PARAPHRASES = [
    ("How do I cancel my gym membership?", "How can I cancel my gym membership?"),
    ("What is the phone number for customer service?", "What's the customer service phone number?"),
    ("How do I change my delivery address?", "How do I update my delivery address?"),
    ("Can I pay by card at the market?", "Is it possible to pay by card at the market?"),
    ("Hi there, how do I reset my router?", "How do I reset my router? Thanks!"),
    ("How do I turn off Bluetooth?", "How can I disable Bluetooth?"),
    (
        "How do I get a refund for a damaged parcel?",
        "How can I get a refund for a damaged package?",
    ),
    ("How do I set up MFA?", "How do I set up multi-factor authentication?"),
    ("Can I get a refund within 30 days?", "Within 30 days, can I get a refund?"),
    ("Send the report to Priya", "Please send Priya the report"),
    ("Do you ship to the US?", "Do you ship to America?"),
]

TYPOS = [
    ("How do I change my billing address?", "How do I chnage my billing adress?"),
    ("Can I receive parcels at the weekend?", "Can I recieve parcels at the weekend?"),
    ("What are the opening hours of the library?", "What are the opening hours of the libary?"),
    ("How do I reset my password?", "HOW DO I RESET MY PASSWORD"),
    ("Where is my nearest branch?", "where is my nearest branch"),
]


@pytest.mark.parametrize(("cached", "new"), NUMBERS)
def test_numbers_must_agree(cached: str, new: str) -> None:
    assert_rejected(cached, new, "quantities differ")


@pytest.mark.parametrize(("cached", "new"), SAME_NUMBERS + SAME_CURRENCIES + SAME_DATES)
def test_same_quantity_written_differently_is_served(cached: str, new: str) -> None:
    assert_accepted(cached, new)


@pytest.mark.parametrize(("cached", "new"), CURRENCIES)
def test_amounts_and_currencies_must_agree(cached: str, new: str) -> None:
    assert_rejected(cached, new, "quantities differ")


@pytest.mark.parametrize(("cached", "new"), DATES)
def test_dates_and_times_must_agree(cached: str, new: str) -> None:
    assert_rejected(cached, new, "quantities differ")


@pytest.mark.parametrize(("cached", "new"), NEGATIONS)
def test_negation_must_agree(cached: str, new: str) -> None:
    assert_rejected(cached, new, "differs")


@pytest.mark.parametrize(("cached", "new"), SAME_NEGATIONS)
def test_negation_written_differently_is_served(cached: str, new: str) -> None:
    assert_accepted(cached, new)


@pytest.mark.parametrize(("cached", "new"), ANTONYMS)
def test_antonyms_are_refused(cached: str, new: str) -> None:
    assert_rejected(cached, new, "polarity differs")


@pytest.mark.parametrize(("cached", "new"), ENTITIES)
def test_entity_swaps_are_refused(cached: str, new: str) -> None:
    assert_rejected(cached, new, "entity only in")


@pytest.mark.parametrize(("cached", "new"), DIRECTIONS)
def test_reversed_directions_are_refused(cached: str, new: str) -> None:
    assert_rejected(cached, new, "roles")


@pytest.mark.parametrize(("cached", "new"), DETAILS)
def test_changed_details_of_a_minimal_contrast_are_refused(cached: str, new: str) -> None:
    assert_rejected(cached, new, "details differ")


@pytest.mark.parametrize(("cached", "new"), PARAPHRASES + TYPOS)
def test_paraphrases_and_typos_are_served(cached: str, new: str) -> None:
    assert_accepted(cached, new)


def test_reworded_pairs_are_served_only_when_close() -> None:
    accepted, reason = decide(
        "Where can I leave my bike?", "Is there somewhere to lock up bicycles?", distance=0.15
    )
    assert accepted, reason
    accepted, reason = decide(
        "Where can I leave my bike?", "Is there somewhere to lock up bicycles?", distance=0.3
    )
    assert not accepted
    assert "reworded" in reason
    accepted, _ = decide(
        "Where can I leave my bike?",
        "Is there somewhere to lock up bicycles?",
        distance=0.3,
        reworded_max_distance=None,
    )
    assert accepted


def test_long_texts_tolerate_reworded_details_when_close() -> None:
    cached = (
        "The export function writes every record of the selected table to a comma "
        "separated file and keeps the column order of the original schema."
    )
    new = (
        "The export function writes every record of the chosen table to a comma "
        "separated file and preserves the column order of the original schema."
    )
    assert_accepted(cached, new)


async def test_verify_is_async_and_names_itself() -> None:
    verifier = RulesVerifier(name="my-rules")
    assert isinstance(verifier, HitVerifier)
    stored = verifier.signature("Is the pool open on Monday?")
    verdict = await verifier.verify(
        "Is the pool open on Friday?",
        verifier.signature("Is the pool open on Friday?"),
        Candidate("x", 0.05, stored),
    )
    assert verdict.verifier == "my-rules"
    assert not verdict.accepted


async def test_verify_recomputes_a_missing_new_signature() -> None:
    verifier = RulesVerifier()
    stored = verifier.signature("Is the pool open on Monday?")
    verdict = await verifier.verify("Is the pool open on Monday?", None, Candidate("x", 0, stored))
    assert verdict.accepted


@pytest.mark.parametrize("stored", [None, {"v": 999}, {"v": rules_module.RULES_VERSION, "w": 3}])
def test_entries_without_a_usable_signature_are_refused(stored: object) -> None:
    verifier = RulesVerifier()
    verdict = verifier.decide("Is the pool open?", None, Candidate("x", 0.0, stored))  # type: ignore[arg-type]
    assert not verdict.accepted


def test_signature_is_compact_json() -> None:
    verifier = RulesVerifier()
    text = "How do I migrate my database from MySQL to Postgres before 5 March?"
    signature = verifier.signature(text)
    encoded = json.dumps(signature, separators=(",", ":"))
    assert json.loads(encoded) == signature
    assert signature["v"] == rules_module.RULES_VERSION
    assert "mysql" in signature["w"]
    assert len(encoded) < 600


def test_signature_without_text_holds_no_prompt_words() -> None:
    text = "Please transfer seventy pounds from Barclays to Monzo before Thursday morning"
    private = RulesVerifier(store_text=False, hash_key=b"secret")
    encoded = json.dumps(private.signature(text)).lower()
    for word in ("transfer", "seventy", "pounds", "barclays", "monzo", "thursday", "morning"):
        assert word not in encoded
    assert "70" not in encoded
    # The same decisions as with text.
    for cached, new, expected in [
        (text, "Please transfer £70 from Barclays to Monzo before Thursday morning", True),
        (
            text,
            "Please transfer seventy pounds from Monzo to Barclays before Thursday morning",
            False,
        ),
        (
            text,
            "Please transfer seventy pounds from Barclays to Monzo before Friday morning",
            False,
        ),
        ("How do I chnage my billing adress?", "How do I change my billing address?", True),
        ("How do I turn on alerts?", "How do I disable alerts?", False),
    ]:
        verdict = private.decide(
            new, private.signature(new), Candidate("x", 0.1, private.signature(cached))
        )
        assert verdict.accepted is expected, (cached, new, verdict.reason)


def test_a_different_hash_key_never_matches() -> None:
    text = "How do I renew my parking permit?"
    one = RulesVerifier(store_text=False, hash_key="one")
    two = RulesVerifier(store_text=False, hash_key="two")
    verdict = two.decide(text, two.signature(text), Candidate("x", 0.0, one.signature(text)))
    assert not verdict.accepted


def test_text_signatures_are_read_by_a_private_verifier_and_back() -> None:
    text = "How do I renew my parking permit?"
    public, private = RulesVerifier(), RulesVerifier(store_text=False)
    assert private.decide(text, None, Candidate("x", 0, public.signature(text))).accepted
    assert public.decide(text, None, Candidate("x", 0, private.signature(text))).accepted


def test_checks_can_be_switched_off() -> None:
    cached, new = "Can I bring 2 bags?", "Can I bring 3 bags?"
    assert not decide(cached, new)[0]
    assert decide(cached, new, checks={"polarity", "entities", "roles", "details"})[0]


@pytest.mark.parametrize(
    "options",
    [
        {"name": ""},
        {"hash_key": b"x" * 65},
        {"reworded_max_distance": 3.0},
        {"min_overlap": 1.5},
        {"checks": {"numbers"}},
        {"max_chars": 0},
        {"max_chars": 2.5},
        {"max_chars": True},
    ],
)
def test_bad_options_are_configuration_errors(options: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        RulesVerifier(**options)  # type: ignore[arg-type]


def test_missing_stemmer_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "snowballstemmer", None)
    monkeypatch.setattr(rules_module, "_local", threading.local())  # no stemmer built yet
    rules_module._stem.cache_clear()
    try:
        with pytest.raises(MissingDependencyError, match=r"pip install snowballstemmer"):
            RulesVerifier().signature("How do I renew my unusual zebra permit?")
    finally:
        rules_module._stem.cache_clear()


LONG_QUESTION = (
    "We moved our billing to the annual plan last spring and the invoice for the second "
    "quarter still shows the monthly price; which of the two should the auditors use? "
) * 20


def test_prompts_longer_than_max_chars_are_never_served_semantically() -> None:
    # Embedders read a bounded window: two long prompts that embed alike may differ
    # anywhere after it, so the rules refuse rather than vouch for what they skip.
    assert len(LONG_QUESTION) > rules_module.DEFAULT_MAX_CHARS
    verifier = RulesVerifier()
    marker = verifier.signature(LONG_QUESTION)
    assert marker == {"v": rules_module.RULES_VERSION, "L": len(LONG_QUESTION)}
    assert_rejected(LONG_QUESTION, LONG_QUESTION + " Thanks.", "too long to verify")
    # A short new prompt against a long cached one is refused too.
    assert_rejected(LONG_QUESTION, "Which invoice should the auditors use?", "too long")
    # Without the limit the same pair is analysed (and this one is a paraphrase).
    assert_accepted(LONG_QUESTION, LONG_QUESTION + " Thanks.", max_chars=None)


def test_very_long_words_cost_linear_time() -> None:
    # Typo variants are quadratic in a word's length: a 200k-letter "word" (a pasted
    # blob) must not get them, or this test would not finish.
    blob = "q" * 200_000
    signature = RulesVerifier(max_chars=None).signature(f"What does {blob} mean?")
    assert blob in signature["w"]


ALL_PAIRS = (
    NUMBERS + SAME_NUMBERS + CURRENCIES + SAME_CURRENCIES + DATES + SAME_DATES + NEGATIONS
    + SAME_NEGATIONS + ANTONYMS + ENTITIES + DIRECTIONS + DETAILS + PARAPHRASES + TYPOS
)  # fmt: skip


@pytest.mark.parametrize("store_text", [True, False])
def test_one_verifier_decides_every_pair_as_a_fresh_one_does(store_text: bool) -> None:
    # A verifier memoises parsed signatures; deciding many pairs, in two orders, with
    # shared entries, gives each pair the verdict a new verifier gives it.
    shared = RulesVerifier(store_text=store_text)
    pairs = [*ALL_PAIRS, *((b, a) for a, b in ALL_PAIRS), *((a, a.upper()) for a, _ in ALL_PAIRS)]

    def verdict(verifier: RulesVerifier, cached: str, new: str, distance: float) -> object:
        stored = json.loads(json.dumps(verifier.signature(cached)))
        found = verifier.decide(new, verifier.signature(new), Candidate("e", distance, stored))
        return found.accepted, found.reason

    for distance in (0.02, 0.1, 0.3):
        fresh = [verdict(RulesVerifier(store_text=store_text), a, b, distance) for a, b in pairs]
        assert [verdict(shared, a, b, distance) for a, b in pairs] == fresh
        assert [verdict(shared, a, b, distance) for a, b in reversed(pairs)] == fresh[::-1]
    assert 0 < len(shared._sides) <= rules_module._PARSED_SIDES


def test_identical_features_are_served_as_the_full_comparison_serves_them() -> None:
    verifier = RulesVerifier()
    # A repeat up to case and punctuation: the same features, served.
    assert decide("prompt 500", "Prompt 500?") == (True, "same content")
    # A signature whose features do not match themselves (a number without a value,
    # which the rules never write) is refused even when both sides are identical.
    odd = {"v": rules_module.RULES_VERSION, "w": ["price"], "q": [["n", "", [], ""]]}
    for _ in range(2):  # the second time from the memo
        verdict = verifier.decide("price", odd, Candidate("e", 0.01, dict(odd)))
        assert not verdict.accepted
        assert "quantities differ" in verdict.reason


def test_unserialisable_signatures_are_still_decided() -> None:
    # Not JSON (so not memoisable): parsed each time, decided as usual.
    verifier = RulesVerifier()
    stored = verifier.signature("How do I reset my password?")
    stored["extra"] = {1, 2}
    verdict = verifier.decide(
        "How can I reset my password?",
        verifier.signature("How can I reset my password?"),
        Candidate("e", 0.1, stored),
    )
    assert verdict.accepted, verdict.reason


def test_no_before_a_number_abbreviates_number_and_is_no_negation() -> None:
    assert_accepted("Where is gate 12?", "Where is gate No. 12?")
    assert_accepted("What's the status of order no. 4512?", "Status of order 4512?")
    assert_rejected("Where is gate no. 12?", "Where is gate no. 14?", "quantities differ")
    # Without the period it stays a negation ("no 5-star hotels").
    assert_rejected("Are there 5 star hotels?", "Are there no 5 star hotels?", "negation")


def test_only_short_signatures_are_kept_parsed() -> None:
    # Parsed sides of long prompts are large (typo variants, acronym runs): they are
    # parsed again for each comparison instead of kept.
    verifier = RulesVerifier()
    words = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima".split()
    long_prompt = " ".join(words[i % len(words)] + str(i) for i in range(60))
    short_prompt = "How do I reset my password?"
    for prompt in (long_prompt, short_prompt):
        stored = json.loads(json.dumps(verifier.signature(prompt)))
        verdict = verifier.decide(prompt, verifier.signature(prompt), Candidate("e", 0.1, stored))
        assert verdict.accepted, verdict.reason
    assert len(verifier._sides) == 1  # the short prompt's (both sides are the same text)


def test_one_verifier_shared_by_threads_decides_as_a_fresh_one_does() -> None:
    from concurrent.futures import ThreadPoolExecutor

    pairs = [*ALL_PAIRS, *((b, a) for a, b in ALL_PAIRS)]
    signer = RulesVerifier()
    stored = {
        text: json.loads(json.dumps(signer.signature(text))) for pair in pairs for text in pair
    }

    def verdicts(verifier: RulesVerifier, order: list[tuple[str, str]]) -> list[object]:
        out = []
        for cached, new in order:
            found = verifier.decide(new, stored[new], Candidate("e", 0.1, stored[cached]))
            out.append((cached, new, found.accepted, found.reason))
        return sorted(out)

    expected = verdicts(RulesVerifier(), pairs)
    shared = RulesVerifier()
    with ThreadPoolExecutor(max_workers=4) as pool:
        orders = [pairs, pairs[::-1], pairs[1::2] + pairs[::2], pairs]
        results = list(pool.map(lambda order: verdicts(shared, order), orders))
    assert all(result == expected for result in results)


@pytest.fixture
def cold_stems() -> Iterator[None]:
    """Empty stem and lexicon caches, emptied again afterwards (nothing this test
    computed, right or wrong, outlives it)."""
    rules_module._stem.cache_clear()
    rules_module._index.cache_clear()
    yield
    rules_module._stem.cache_clear()
    rules_module._index.cache_clear()


def test_sixteen_threads_stem_and_decide_as_one_thread_does(cold_stems: None) -> None:
    # The Snowball stemmer keeps per-word state in the object: one shared by threads
    # raised IndexError and returned (and cached, for the life of the process) the stem
    # of another thread's word. From cold caches, 16 threads sign and decide every pair
    # (both ways round, two distances) while Python switches threads as often as it can.
    import snowballstemmer

    pairs = [*ALL_PAIRS, *((b, a) for a, b in ALL_PAIRS)]
    cases = [(a, b, d) for d in (0.05, 0.3) for a, b in pairs]

    def verdicts(verifier: RulesVerifier, order: list[tuple[str, str, float]]) -> list[object]:
        out = []
        for cached, new, distance in order:
            stored = json.loads(json.dumps(verifier.signature(cached)))
            found = verifier.decide(new, verifier.signature(new), Candidate("e", distance, stored))
            out.append((cached, new, distance, found.accepted, found.reason))
        return sorted(out)

    expected = verdicts(RulesVerifier(), cases)
    expected_index = rules_module._index()
    words = {w for text in {t for pair in pairs for t in pair} for w in text.lower().split()}
    words |= {w for ws in lex_words() for w in ws}
    reference = snowballstemmer.stemmer("english")
    expected_stems = {w: reference.stemWord(w) for w in words}
    rules_module._stem.cache_clear()
    rules_module._index.cache_clear()

    shared = RulesVerifier()
    start = threading.Barrier(16)
    errors: list[BaseException] = []

    def run(n: int) -> list[object]:
        order = cases[n * 37 % len(cases) :] + cases[: n * 37 % len(cases)]
        start.wait()
        try:
            return verdicts(shared, order)
        except BaseException as exc:
            errors.append(exc)
            raise

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        with ThreadPoolExecutor(max_workers=16) as pool:
            results = list(pool.map(run, range(16)))
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
    assert all(result == expected for result in results)
    # What the caches keep is right too: every stem, and the lexicon index built by the
    # first thread that needed it.
    assert {w: rules_module._stem(w) for w in words} == expected_stems
    assert rules_module._index() == expected_index


def lex_words() -> list[Iterable[str]]:
    """Every word of the lexicon that the verifier stems."""
    from llmemo.verify import _lexicon as lex

    out: list[Iterable[str]] = [lex.PREFIX_FALSE_FRIENDS, *lex.SYNONYMS]
    for plus, minus in lex.AXES.values():
        out += [[w for w in plus if "-" not in w], [w for w in minus if "-" not in w]]
    return out


@pytest.mark.parametrize(
    "hostile",
    [
        {"n": float("inf")},  # int(inf): OverflowError once
        {"n": float("nan")},
        {"p": [["open", float("inf")]]},
        {"x": [[float("inf"), "base"]]},
        {"i": [["p", 0, float("-inf")]]},
    ],
)
def test_a_hostile_stored_signature_is_an_unreadable_one(hostile: dict[str, object]) -> None:
    # A signature is stored data: one another writer planted is refused, not raised.
    nested: list[object] = []
    for _ in range(5000):
        nested = [nested]
    for fields in (hostile, {"w": nested}):
        stored = {"v": rules_module.RULES_VERSION, "w": ["price"], "f": ".", **fields}
        verdict = RulesVerifier().decide("price", None, Candidate("e", 0.1, stored))
        assert not verdict.accepted
        assert "unreadable signature" in verdict.reason


# Issue 18: the escape hatches (no details check below ``details_min_distance``, the
# long-prompt tolerance) excuse word choice, never a change of polarity. Each case is
# refused at a distance below the details threshold as well as above it.
HIDDEN_NEGATIONS = [
    ("Should I take ibuprofen for a headache?", "Should I avoid ibuprofen for a headache?"),
    (
        "The report confirms that the bridge was safe for heavy trucks last winter.",
        "The report refutes that the bridge was safe for heavy trucks last winter.",
    ),
    (
        "The new drug helped most patients recover faster from the infection in the trial.",
        "The new drug failed to help most patients recover faster from the infection in the trial.",
    ),
    (
        "The tenants remembered to pay the rent for the flat before leaving for the summer.",
        "The tenants forgot to pay the rent for the flat before leaving for the summer.",
    ),
    ("What time is check-in at the hotel?", "What time is check-out at the hotel?"),
    ("Is check-in at 3pm?", "Is check-out at 3pm?"),
]


@pytest.mark.parametrize(("cached", "new"), HIDDEN_NEGATIONS)
@pytest.mark.parametrize("distance", [0.01, 0.04, 0.1])
def test_escape_hatches_never_excuse_a_polarity_change(
    cached: str, new: str, distance: float
) -> None:
    accepted, reason = decide(cached, new, distance=distance)
    assert not accepted, f"served {new!r} for {cached!r} at {distance} ({reason})"
    accepted, reason = decide(new, cached, distance=distance)
    assert not accepted, f"served {cached!r} for {new!r} at {distance} ({reason})"


# Issue 17 item 7: a generic head noun ("the capital city", "contents insurance policy")
# adds no detail; swapping one generic noun for another still does.
GENERIC_KIND = [
    ("Tell me the capital city of France", "What is the capital of France?"),
    ("What is the capital city of France?", "What is the capital of France?"),
    ("Can you tell me the capital city of France?", "What is the capital of France?"),
    ("Tell me the capital city of France", "Tell me the capital of France"),
    (
        "What's the excess on my contents insurance?",
        "What's the excess on my contents insurance policy?",
    ),
]
GENERIC_KIND_DIFFERENT = [
    ("What is the largest city in Spain?", "What is the largest region in Spain?"),
    ("Tell me the capital city of France", "Tell me the capital city of Spain"),
    ("How many people live in the city?", "How many people live in the country?"),
    ("What is the capital of France?", "What is the capital region of France?"),
]


@pytest.mark.parametrize(("cached", "new"), GENERIC_KIND)
@pytest.mark.parametrize("distance", [0.04, 0.1, 0.15])
def test_a_generic_head_noun_is_not_a_detail(cached: str, new: str, distance: float) -> None:
    accepted, reason = decide(cached, new, distance=distance)
    assert accepted, f"refused {new!r} for {cached!r} at {distance}: {reason}"
    accepted, reason = decide(new, cached, distance=distance)
    assert accepted, f"refused {cached!r} for {new!r} at {distance}: {reason}"


@pytest.mark.parametrize(("cached", "new"), GENERIC_KIND_DIFFERENT)
def test_generic_nouns_that_differ_are_still_details(cached: str, new: str) -> None:
    accepted, reason = decide(cached, new, distance=0.1)
    assert not accepted, f"served {new!r} for {cached!r} ({reason})"


def test_a_negative_pole_word_stands_for_a_spelled_out_negation() -> None:
    assert_accepted("How do I decline a meeting invite?", "How do I say no to a meeting invite?")
    assert_accepted(
        "How do I reset my password if I no longer have access to my email?",
        "How do I reset my password if I lost access to my email?",
    )
    # Only where the other side has no word on that axis: a flip is still a flip.
    assert_rejected("Why was my card declined?", "Why wasn't my card declined?", "differs")
    assert_rejected("Is the gym closed on Sunday?", "Isn't the gym closed on Sunday?", "differs")
