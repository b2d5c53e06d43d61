"""Word lists behind :mod:`llmemo.verify.rules`: general English, no domain vocabulary.

Everything here is closed-class or textbook lexical knowledge: function words, number
words, units, currencies, calendar words, and antonym pairs grouped into *axes* (a word
on the ``+`` pole of an axis and a word on its ``-`` pole say opposite things; two words
on the same pole may paraphrase each other). The lists are written by hand for this
project; they are data, kept apart from the logic so that they can be reviewed and
extended without reading the matcher.
"""

from __future__ import annotations

__all__ = [
    "ACRONYM_STOP",
    "AXES",
    "CALENDAR",
    "CONTRACTIONS",
    "COUNTRY_ALIASES",
    "CURRENCY_CODES",
    "CURRENCY_SYMBOLS",
    "CURRENCY_WORDS",
    "GENERIC_NOUNS",
    "GREETINGS",
    "GREETING_TAIL",
    "IMPLICIT_NEGATORS",
    "IMPLICIT_NEGATORS_BEFORE_TO",
    "LIGHT_WORDS",
    "NEGATIVE_PREFIXES",
    "NEGATORS",
    "NUMBER_WORDS",
    "ORDINAL_WORDS",
    "PARTICLE_AXES",
    "PHRASAL_VERBS",
    "PREFIX_FALSE_FRIENDS",
    "QUANTITY_BOUNDS",
    "ROLE_WORDS",
    "SCALE_WORDS",
    "STOPWORDS",
    "SYNONYMS",
    "TIME_OF_DAY",
    "UNITS",
]

# Function words: never content, never compared.
STOPWORDS = frozenset(
    """
    a an the this that these those some any each every either all both such
    i me my mine myself we us our ours ourselves you your yours yourself yourselves
    he him his himself she her hers herself it its itself they them their theirs themselves
    one's someone somebody something anyone anybody anything everyone everybody everything
    what which who whom whose when where why how whether whatever whoever
    is are was were be been being am 's 're 've 'd 'll 'm
    and or but if then than so as because while though although also too very
    of in on at by for with about into onto from to up down out off over under
    again further once here there now only own same just
    do does did doing done can could would should will shall may might must ought
    have has had having
    there's here's what's where's who's how's that's it's let's
    """.split()
)

# Semantically light words: they frame a request rather than say what it is about, so a
# paraphrase adds or drops them freely ("How do I ..." / "What's the way to ...").
LIGHT_WORDS = frozenset(
    """
    get gets getting got gotten go goes going went gone make makes making made
    take takes taking took taken give gives giving gave given put puts putting
    want wants wanted wanting like would need needs needed needing
    know knows knew tell tells told let lets see sees say says said
    way ways thing things stuff process procedure step steps option options
    possible able allowed okay ok fine sure
    please pls thanks thank cheers kindly hi hello hey dear um uh erm er hmm
    actually really basically just still already even usually normally typically generally
    currently exactly anyway also ever
    help helps try trying find out able
    kind sort bit lot lots much many more most
    price prices pricing cost costs fee fees charge charges charged pay pays paid paying
    time times
    available availability information info details detail
    happen happens happened set sets stay stays remain remains
    somewhere anywhere anyone
    there
    """.split()
)

# Words that negate their clause.
NEGATORS = frozenset(
    "not no never none nothing nobody nowhere neither nor without cannot unable n't".split()
)

# Verbs whose meaning is the negation of their complement ("avoid X" = "not do X",
# "refute that X" = "X is not so", "prevent X" = "make X not happen"): counted as
# negators, so that no tolerance for reworded details can excuse them. None is on an axis
# below. Matched by stem.
IMPLICIT_NEGATORS = frozenset("avoid prevent refute disprove debunk neglect lack refrain".split())
# Verbs that negate only a following "to <verb>": "failed to pay" = "did not pay", but
# "I forgot my password" asks how to recover it ("fail" is also on the success axis).
IMPLICIT_NEGATORS_BEFORE_TO = frozenset("fail forget forgot".split())

# Generic head nouns: "the capital city of France" asks for "the capital of France",
# "my contents insurance policy" is "my contents insurance". One side may add one next to
# a word both sides share; one generic noun swapped for another is still a detail.
# Only nouns that name a kind so broad that the shared word already implies it: "region",
# "area" or "place" are left out ("the capital region of France" is not its capital).
GENERIC_NOUNS = frozenset("city town village country nation thing item policy".split())

# Contractions whose first part stays (lowercase form -> (kept word, negated)).
CONTRACTIONS: dict[str, tuple[str, bool]] = {
    "can't": ("can", True),
    "cannot": ("can", True),
    "won't": ("will", True),
    "shan't": ("shall", True),
    "ain't": ("be", True),
    "don't": ("do", True),
    "doesn't": ("does", True),
    "didn't": ("did", True),
    "isn't": ("is", True),
    "aren't": ("are", True),
    "wasn't": ("was", True),
    "weren't": ("were", True),
    "haven't": ("have", True),
    "hasn't": ("has", True),
    "hadn't": ("had", True),
    "shouldn't": ("should", True),
    "wouldn't": ("would", True),
    "couldn't": ("could", True),
    "mustn't": ("must", True),
    "needn't": ("need", True),
    "mightn't": ("might", True),
}

# Opening greetings and fillers dropped from the start of a prompt, and the words that
# may follow a greeting as part of it ("Hi team, ...").
GREETINGS = frozenset("hi hello hey hiya morning afternoon evening dear greetings yo".split())
GREETING_TAIL = frozenset("there team all everyone folks guys support".split())

# Prefixes that negate the word they attach to (unsafe, disable, non-member, illegal).
NEGATIVE_PREFIXES = ("non", "dis", "un", "in", "im", "il", "ir", "de")
# Words that begin with such a prefix without being its negation; only consulted when
# the "base" also occurs in the other prompt, so the list can stay short.
PREFIX_FALSE_FRIENDS = frozenset(
    """
    income inform information invoice interest insure insurance install index industry inside
    into increase include discuss display dispatch discover discount disease distance
    distribute district understand under uniform union unit unite universal unique until
    deposit describe design detail delay deliver delivery demand debit decide degree
    depart department depend desk deal dear debt decline define delete develop device
    impact import improve impress implement imply illustrate irony iron invest invite
    invent inside insert instant instead intend
    """.split()
)

# Antonym axes: each axis lists its + pole and its - pole. Inflected forms are matched
# through the stemmer, so "enabled"/"enabling" need no entry of their own.
AXES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "active": (
        ("enable", "activate", "start", "begin", "resume", "launch", "unpause"),
        (
            "disable",
            "deactivate",
            "stop",
            "end",
            "cancel",
            "pause",
            "suspend",
            "terminate",
            "quit",
            "halt",
            "discontinue",
            "cease",
        ),
    ),
    "commit": (
        ("book", "reserve", "subscribe", "join", "enrol", "enroll", "register", "signup"),
        ("cancel", "unsubscribe", "leave", "withdraw", "quit", "deregister", "unregister"),
    ),
    "open": (("open", "reopen"), ("close", "closed", "shut")),
    "lock": (("lock", "freeze", "block", "bar", "suspend"), ("unlock", "unfreeze", "unblock")),
    "include": (("include", "contain", "incl"), ("exclude", "except", "excluding", "omit")),
    "permit": (
        ("allow", "permit", "legal", "lawful", "authorised", "authorized", "eligible", "entitled"),
        (
            "ban",
            "forbid",
            "forbidden",
            "prohibit",
            "illegal",
            "unlawful",
            "restrict",
            "unauthorised",
        ),
    ),
    "accept": (
        ("accept", "approve", "agree", "grant", "confirm"),
        ("decline", "reject", "refuse", "deny", "revoke", "disagree", "disapprove"),
    ),
    "add": (
        ("add", "insert", "attach", "install", "connect", "create"),
        ("remove", "delete", "detach", "uninstall", "disconnect", "erase"),
    ),
    "more": (
        (
            "increase",
            "raise",
            "more",
            "most",
            "high",
            "higher",
            "highest",
            "big",
            "bigger",
            "biggest",
            "large",
            "larger",
            "largest",
            "great",
            "greater",
            "greatest",
            "maximum",
            "max",
            "boost",
            "expand",
            "exceed",
            "plus",
        ),
        (
            "decrease",
            "reduce",
            "lower",
            "low",
            "lowest",
            "less",
            "least",
            "fewer",
            "fewest",
            "small",
            "smaller",
            "smallest",
            "little",
            "tiny",
            "minimum",
            "min",
            "shrink",
            "minus",
        ),
    ),
    "grade": (("upgrade",), ("downgrade",)),
    "when": (("after", "since", "beyond"), ("before", "until", "till", "within", "prior")),
    "sequence": (
        ("next", "following", "upcoming", "future", "subsequent"),
        ("previous", "prior", "earlier", "past", "former"),
    ),
    "new": (("new", "newer", "newest", "latest", "recent"), ("old", "older", "oldest")),
    "early": (("early", "sooner"), ("late", "overdue")),
    "good": (
        (
            "good",
            "better",
            "best",
            "benefit",
            "advantage",
            "pro",
            "pros",
            "upside",
            "positive",
            "excellent",
            "outstanding",
            "great",
        ),
        (
            "bad",
            "worse",
            "worst",
            "drawback",
            "disadvantage",
            "cons",
            "downside",
            "negative",
            "poor",
            "inadequate",
            "terrible",
            "awful",
        ),
    ),
    "works": (
        ("working", "functioning", "operational"),
        ("broken", "faulty", "fault", "defective", "malfunction", "malfunctioning"),
    ),
    "success": (("pass", "succeed", "success", "successful", "win", "won"), ("fail", "failure")),
    "find": (("find", "found", "recover"), ("lose", "lost", "missing")),
    "hot": (("hot", "warm", "heat", "summer"), ("cold", "cool", "freezing", "chilly", "winter")),
    "busy": (("busy", "crowded", "packed", "peak"), ("quiet", "empty", "calm", "off-peak")),
    "full": (("full", "whole", "entire", "complete"), ("part", "partial", "half")),
    "fast": (
        ("fast", "faster", "fastest", "quick", "quicker", "quickest", "rapid", "express"),
        ("slow", "slower", "slowest"),
    ),
    "cheap": (
        ("cheap", "cheaper", "cheapest", "inexpensive", "affordable"),
        ("expensive", "dear", "costly", "pricey", "pricier"),
    ),
    "long": (("long", "longer", "longest"), ("short", "shorter", "shortest", "brief")),
    "heavy": (("heavy", "heavier", "heaviest"), ("light", "lighter", "lightest")),
    "bright": (("bright", "light"), ("dark", "dim")),
    "age": (
        ("adult", "adults", "grown-up", "elderly", "senior", "pensioner"),
        (
            "child",
            "children",
            "kid",
            "kids",
            "baby",
            "babies",
            "infant",
            "toddler",
            "teen",
            "teenager",
            "minor",
            "junior",
            "young",
        ),
    ),
    "gender": (
        ("man", "men", "male", "boy", "gentleman", "father", "dad", "husband", "son", "brother"),
        (
            "woman",
            "women",
            "female",
            "girl",
            "lady",
            "ladies",
            "mother",
            "mum",
            "mom",
            "wife",
            "daughter",
            "sister",
        ),
    ),
    "inside": (
        ("inside", "internal", "indoor", "inbound", "incoming", "import", "domestic"),
        ("outside", "external", "outdoor", "outbound", "outgoing", "export", "international"),
    ),
    "load": (("upload",), ("download",)),
    "send": (("send", "lend", "sell"), ("receive", "borrow", "buy", "purchase")),
    "true": (("true", "correct", "right", "valid"), ("false", "wrong", "incorrect", "invalid")),
    "same": (("same", "identical", "similar"), ("different", "differ")),
    "public": (("public", "visible", "show"), ("private", "secret", "hidden", "hide")),
    "arrive": (("arrive", "arrival", "arrivals"), ("depart", "departure", "departures")),
    "online": (
        ("online", "digital", "electronic", "paperless", "email", "e-mail"),
        ("offline", "paper", "post", "postal", "printed"),
    ),
    "wet": (("wet", "damp"), ("dry",)),
    "easy": (("easy", "easier", "easiest", "simple"), ("difficult", "hard", "harder", "hardest")),
}

# Groups of general-purpose near-synonyms (a thesaurus' first entries): one may stand in
# for another in a paraphrase. Domain terms and names are deliberately absent.
SYNONYMS: tuple[tuple[str, ...], ...] = (
    ("change", "update", "modify", "amend", "edit", "alter"),
    ("shop", "store"),
    ("road", "street"),
    ("result", "grade", "score", "mark"),
    ("transfer", "move", "shift"),
    ("obtain", "acquire"),
    ("dispute", "challenge", "contest"),
    ("mute", "silence"),
    ("book", "reserve", "booking", "reservation"),
    ("request", "order"),
    ("warranty", "guarantee"),
    ("luggage", "baggage"),
    ("delivery", "shipping", "postage", "deliver", "ship"),
    ("parcel", "package"),
    ("child", "kid"),
    ("chemist", "pharmacy"),
    ("jab", "vaccine", "vaccination", "injection"),
    ("holiday", "vacation"),
    ("flat", "apartment"),
    ("car", "vehicle"),
    ("phone", "mobile", "cellphone"),
    ("film", "movie"),
    ("rubbish", "trash", "garbage"),
    ("buy", "purchase"),
    ("help", "assist", "support", "assistance"),
    ("fix", "repair", "mend"),
    ("picture", "photo", "image"),
    ("choose", "select", "pick"),
    ("problem", "issue", "trouble"),
    ("ask", "enquire", "inquire", "query"),
    ("document", "file", "doc"),
    ("begin", "start", "commence"),
    ("finish", "end", "complete"),
    ("quick", "fast", "rapid"),
    ("big", "large"),
    ("small", "little"),
    ("register", "enrol", "enroll", "signup"),
    ("email", "e-mail", "mail"),
    ("refund", "reimburse", "reimbursement"),
    ("employer", "company", "firm"),
    ("doctor", "physician"),
    ("cancel", "terminate"),
)

# Verbs (as stems) whose particle carries polarity: "turn on"/"turn off", "opt in"/"opt
# out", "scale up"/"scale down".
PHRASAL_VERBS: dict[str, frozenset[str]] = {
    "turn": frozenset({"on", "off", "up", "down"}),
    "switch": frozenset({"on", "off"}),
    "power": frozenset({"on", "off"}),
    "log": frozenset({"in", "out", "on", "off"}),
    "sign": frozenset({"in", "out"}),
    "opt": frozenset({"in", "out"}),
    "check": frozenset({"in", "out"}),
    "clock": frozenset({"in", "out"}),
    "scale": frozenset({"up", "down"}),
    "dial": frozenset({"up", "down"}),
    "tone": frozenset({"up", "down"}),
}
PARTICLE_AXES: dict[str, tuple[str, int]] = {
    "on": ("active", 1),
    "off": ("active", -1),
    "in": ("commit", 1),
    "out": ("commit", -1),
    "up": ("more", 1),
    "down": ("more", -1),
}
# Prepositions that bound a quantity ("under £50", "over 18"): polar only before a number.
QUANTITY_BOUNDS: dict[str, tuple[str, int]] = {
    "over": ("more", 1),
    "above": ("more", 1),
    "under": ("more", -1),
    "below": ("more", -1),
}

# Prepositions that give what follows a role ("from X to Y"). Values are the role names.
ROLE_WORDS: dict[str, str] = {
    "from": "from",
    "to": "to",
    "into": "to",
    "onto": "to",
    "towards": "to",
    "than": "than",
    "vs": "vs",
    "versus": "vs",
    "via": "via",
}

NUMBER_WORDS: dict[str, int] = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
    "dozen": 12,
}
SCALE_WORDS: dict[str, int] = {
    "hundred": 100,
    "thousand": 1_000,
    "k": 1_000,
    "million": 1_000_000,
    "m": 1_000_000,
    "mn": 1_000_000,
    "billion": 1_000_000_000,
    "bn": 1_000_000_000,
}
ORDINAL_WORDS: dict[str, int] = {
    "first": 1,
    "second": 2,
    "third": 3,
    "fourth": 4,
    "fifth": 5,
    "sixth": 6,
    "seventh": 7,
    "eighth": 8,
    "ninth": 9,
    "tenth": 10,
    "eleventh": 11,
    "twelfth": 12,
    "thirteenth": 13,
    "fourteenth": 14,
    "fifteenth": 15,
    "sixteenth": 16,
    "seventeenth": 17,
    "eighteenth": 18,
    "nineteenth": 19,
    "twentieth": 20,
    "thirtieth": 30,
}

# Units: spelling -> (dimension, unit, factor to the unit). Durations in seconds, except
# months and years, which are not a fixed number of days.
UNITS: dict[str, tuple[str, str, float]] = {}


def _unit(dimension: str, unit: str, factor: float, *spellings: str) -> None:
    for spelling in spellings:
        UNITS[spelling] = (dimension, unit, factor)


_unit("dur", "s", 1, "second", "seconds", "sec", "secs")
_unit("dur", "s", 60, "minute", "minutes", "min", "mins")
_unit("dur", "s", 3600, "hour", "hours", "hr", "hrs", "h")
_unit("dur", "s", 86400, "day", "days")
_unit("dur", "s", 604800, "week", "weeks", "wk", "wks")
_unit("dur", "s", 1209600, "fortnight", "fortnights")
_unit("dur", "mo", 1, "month", "months", "mo", "mos")
_unit("dur", "mo", 12, "year", "years", "yr", "yrs")
_unit("dur", "mo", 120, "decade", "decades")
_unit("mass", "g", 0.001, "mg", "milligram", "milligrams")
_unit("mass", "g", 1, "g", "gram", "grams", "gramme", "grammes")
_unit("mass", "g", 1000, "kg", "kgs", "kilo", "kilos", "kilogram", "kilograms")
_unit("mass", "g", 453.59237, "lb", "lbs")
_unit("mass", "g", 28.349523125, "oz", "ounce", "ounces")
_unit("mass", "g", 6350.29318, "stone")
_unit("mass", "g", 1_000_000, "tonne", "tonnes")
_unit("len", "m", 0.001, "mm", "millimetre", "millimetres", "millimeter", "millimeters")
_unit("len", "m", 0.01, "cm", "centimetre", "centimetres", "centimeter", "centimeters")
_unit("len", "m", 1, "metre", "metres", "meter", "meters")
_unit("len", "m", 1000, "km", "kilometre", "kilometres", "kilometer", "kilometers")
_unit("len", "m", 1609.344, "mile", "miles", "mi")
_unit("len", "m", 0.0254, "inch", "inches")
_unit("len", "m", 0.3048, "ft", "foot", "feet")
_unit("vol", "l", 0.001, "ml", "millilitre", "millilitres", "milliliter", "milliliters")
_unit("vol", "l", 0.01, "cl")
_unit("vol", "l", 1, "l", "litre", "litres", "liter", "liters")
_unit("vol", "l", 0.568261, "pint", "pints")
_unit("data", "B", 1e3, "kb", "kilobyte", "kilobytes")
_unit("data", "B", 1e6, "mb", "megabyte", "megabytes")
_unit("data", "B", 1e9, "gb", "gigabyte", "gigabytes", "gig", "gigs")
_unit("data", "B", 1e12, "tb", "terabyte", "terabytes")
_unit("speed", "bps", 1e3, "kbps")
_unit("speed", "bps", 1e6, "mbps")
_unit("speed", "bps", 1e9, "gbps")
_unit("pct", "%", 1, "%", "percent", "pc")
_unit("temp", "C", 1, "°c", "celsius", "centigrade")
_unit("temp", "F", 1, "°f", "fahrenheit")
_unit("age", "y", 1, "year-old", "years-old", "yo")

CURRENCY_SYMBOLS: dict[str, str] = {"£": "GBP", "$": "USD", "€": "EUR", "¥": "JPY", "₹": "INR"}
CURRENCY_CODES = frozenset(
    "GBP USD EUR JPY INR AUD CAD NZD CHF CNY HKD SGD SEK NOK DKK PLN ZAR AED BTC".split()
)
# Currency words -> (code, factor to the main unit).
CURRENCY_WORDS: dict[str, tuple[str, float]] = {
    "pound": ("GBP", 1),
    "pounds": ("GBP", 1),
    "quid": ("GBP", 1),
    "sterling": ("GBP", 1),
    "pence": ("GBP", 0.01),
    "p": ("GBP", 0.01),
    "dollar": ("USD", 1),
    "dollars": ("USD", 1),
    "bucks": ("USD", 1),
    "cent": ("USD", 0.01),
    "cents": ("USD", 0.01),
    "euro": ("EUR", 1),
    "euros": ("EUR", 1),
    "yen": ("JPY", 1),
    "rupee": ("INR", 1),
    "rupees": ("INR", 1),
}

# Calendar words -> canonical token. Weekday and month names also match with one typo.
CALENDAR: dict[str, str] = {}
for _index, _day in enumerate(
    ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
):
    CALENDAR[_day] = f"dow{_index}"
    CALENDAR[_day + "s"] = f"dow{_index}"
for _index, _month in enumerate(
    (
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ),
    start=1,
):
    CALENDAR[_month] = f"mon{_index}"
for _abbr, _index in (("jan", 1), ("feb", 2), ("aug", 8), ("sept", 9), ("oct", 10)):
    CALENDAR[_abbr] = f"mon{_index}"
CALENDAR.update(
    {
        "weekday": "weekday",
        "weekdays": "weekday",
        "weekend": "weekend",
        "weekends": "weekend",
        "today": "rel:0d",
        "tonight": "rel:0d",
        "tomorrow": "rel:+1d",
        "yesterday": "rel:-1d",
        "overnight": "overnight",
        "christmas": "christmas",
        "easter": "easter",
    }
)
# Time-of-day words, with the half of the day they put an ambiguous hour in.
TIME_OF_DAY: dict[str, str] = {
    "morning": "am",
    "mornings": "am",
    "afternoon": "pm",
    "afternoons": "pm",
    "evening": "pm",
    "evenings": "pm",
    "night": "pm",
    "nights": "pm",
    "tonight": "pm",
    "noon": "noon",
    "midday": "noon",
    "midnight": "midnight",
}

# Common names of the same place (lowercase). Kept to unambiguous, widely used aliases.
COUNTRY_ALIASES: dict[str, str] = {
    "us": "usa",
    "u.s.": "usa",
    "usa": "usa",
    "america": "usa",
    "states": "usa",
    "uk": "uk",
    "u.k.": "uk",
    "britain": "uk",
    "gb": "uk",
    "eu": "eu",
    "europe": "eu",
    "uae": "uae",
    "emirates": "uae",
}

# All-caps words that are emphasis or shouting rather than acronyms.
ACRONYM_STOP = frozenset("I A OK OR AND THE PLEASE HELP ASAP FYI".split())
