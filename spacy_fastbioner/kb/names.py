"""Normalisation of concept names and mentions, so that spelling variants meet.

A mention and a KB name match when their normal forms are equal. The rules are
crude on purpose: both sides go through the same function, so a rule only has
to be consistent, not linguistically right ("metastases" and "metastasis" stay
apart, but "cancers" and "cancer" meet).
"""

import re
import unicodedata
from typing import Dict, List

# Greek letters by name, as MeSH and CTD spell them ("alpha-Tocopherol") while
# abstracts often write the letter ("α-tocopherol"). NFKC maps the micro sign to mu first.
GREEK: Dict[str, str] = {
    letter: name
    for letters, name in [
        ("αΑ", "alpha"),
        ("βΒϐ", "beta"),
        ("γΓ", "gamma"),
        ("δΔ", "delta"),
        ("εΕϵ", "epsilon"),
        ("ζΖ", "zeta"),
        ("ηΗ", "eta"),
        ("θΘϑ", "theta"),
        ("ιΙ", "iota"),
        ("κΚϰ", "kappa"),
        ("λΛ", "lambda"),
        ("μΜ", "mu"),
        ("νΝ", "nu"),
        ("ξΞ", "xi"),
        ("οΟ", "omicron"),
        ("πΠ", "pi"),
        ("ρΡ", "rho"),
        ("σςΣ", "sigma"),
        ("τΤ", "tau"),
        ("υΥ", "upsilon"),
        ("φΦϕ", "phi"),
        ("χΧ", "chi"),
        ("ψΨ", "psi"),
        ("ωΩ", "omega"),
    ]
    for letter in letters
}
_GREEK_TABLE = str.maketrans({letter: f" {name} " for letter, name in GREEK.items()})
_POSSESSIVE = re.compile(r"(?<=\w)['’`]s\b")
# Everything but letters and digits separates words: hyphens, dashes, slashes, brackets, commas.
_NON_WORD = re.compile(r"[\W_]+")


# British spellings to American ones, inside words: "haemorrhage", "oedema", "tumour".
_SPELLING = [
    (re.compile(r"ae"), "e"),
    (re.compile(r"oe"), "e"),
    (re.compile(r"our$"), "or"),
    (re.compile(r"isation$"), "ization"),
]
# Words that name the same organ or lesion in disease names, to one word ("liver tumor" and
# "hepatic neoplasm" meet; MeSH files both under Liver Neoplasms). Carcinoma stays apart:
# MeSH keeps it a concept of its own.
SYNONYMS: Dict[str, str] = {
    "liver": "hepatic",
    "kidney": "renal",
    "heart": "cardiac",
    "lung": "pulmonary",
    "stomach": "gastric",
    "skin": "cutaneous",
    "tumor": "neoplasm",
    "cancer": "neoplasm",
    "neoplasia": "neoplasm",
    "malignancy": "neoplasm",
}
# Suffixes that `stem` cuts, longest first, so that "ischemic" and "ischemia",
# "hypertrophic" and "hypertrophy", "thromboembolic" and "thromboembolism" meet.
_SUFFIXES = ("ically", "ation", "esis", "ical", "ism", "ity", "ic", "ia", "al", "y")


def _spelling(word: str) -> str:
    for pattern, replacement in _SPELLING:
        word = pattern.sub(replacement, word)
    return word


def _singular(word: str) -> str:
    """Drop a plural ending: "therapies" -> "therapy", "cancers" -> "cancer"; words in -ss,
    -us, -is and short words (ions, "cis", "HIS") are left alone."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def normalize(name: str) -> str:
    """The normal form of a name: NFKC, Greek letters spelled out, lower case, the possessive
    's dropped, punctuation and hyphens to single spaces, each word singular.

    name (str): A mention or a KB name.
    RETURNS (str): Its normal form, "" for a name with no letter or digit.
    """
    text = unicodedata.normalize("NFKC", name).translate(_GREEK_TABLE).lower()
    text = _POSSESSIVE.sub("", text)
    words = (_spelling(_singular(word)) for word in _NON_WORD.sub(" ", text).split())
    return " ".join(SYNONYMS.get(word, word) for word in words)


def stem_key(name: str) -> str:
    """A looser key than `match_key`: each word of the normal form without a derivational
    suffix (`_SUFFIXES`) where at least 4 letters stay, spaces removed.

    name (str): A mention or a KB name.
    RETURNS (str): The key.
    """
    return "".join(_stem(word) for word in normalize(name).split())


def _stem(word: str) -> str:
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word


# Variants of a mention that a vocabulary may write otherwise, each looked up by exact match
# (the sieves of D'Souza & Ng 2015, "Sieve-based entity linking for the biomedical domain"):
# generic words of disorder names that replace one another or are left out ("Wilson disease",
# "Wilson syndrome", "Wilson"); "X of the Y" as "Y X"; Roman and Arabic numerals after "type",
# "stage" and the like ("type II" and "type 2"); a site's carcinoma as its neoplasm (MeSH files
# "breast carcinoma" under Breast Neoplasms); a salt named with its ion ("sodium warfarin",
# "dothiepin hydrochloride") as the active compound. The ranker weighs such a match by its own
# feature ("variant"), fitted on the training documents like the others.
DISORDER_WORDS = ("disease", "disorder", "syndrome", "condition", "abnormality", "anomaly", "impairment")
_INVERTING = frozenset(["of", "in", "with", "on"])
_ARTICLES = frozenset(["the", "a", "an"])
_ROMAN = dict(zip("i ii iii iv v vi vii viii ix x".split(), "1 2 3 4 5 6 7 8 9 10".split()))
_ROMAN.update({arabic: roman for roman, arabic in list(_ROMAN.items())})
_NUMBERED = frozenset(["type", "stage", "grade", "class", "group", "phase", "factor"])  # words before a numeral
SALT_WORDS = frozenset(
    "sodium disodium potassium calcium magnesium hydrochloride dihydrochloride hcl hydrobromide sulfate "
    "sulphate bisulfate maleate citrate acetate phosphate mesylate tartrate bitartrate succinate fumarate "
    "besylate bromide chloride nitrate salt".split()
)


def variants(text: str) -> List[str]:
    """Other ways of writing a normal form (see DISORDER_WORDS), for exact lookup: "wilson
    disease" -> "wilson", "wilson disorder", ...; "deficiency of the c7" -> "c7 deficiency";
    "type ii diabete" -> "type 2 diabete"; "breast carcinoma" -> "breast neoplasm"; "sodium
    warfarin" -> "warfarin". A variant needs a word besides those it drops.

    text (str): A normal form (`normalize`).
    RETURNS (List[str]): The variants, without the text itself and without repeats.
    """
    words = text.split()
    found: List[List[str]] = []
    if len(words) >= 2 and words[-1] in DISORDER_WORDS:
        found.append(words[:-1])
        found.extend(words[:-1] + [other] for other in DISORDER_WORDS if other != words[-1])
    position = next((i for i, word in enumerate(words) if word in _INVERTING), 0)
    if 0 < position < len(words) - 1:
        modifier = words[position + 1 :]
        modifier = modifier[1:] if modifier[0] in _ARTICLES and len(modifier) > 1 else modifier
        found.append(modifier + words[:position])
    numbered = [_ROMAN[w] if w in _ROMAN and i and words[i - 1] in _NUMBERED else w for i, w in enumerate(words)]
    if numbered != words:
        found.append(numbered)
    if len(words) >= 2 and "carcinoma" in words[1:]:
        found.append(["neoplasm" if word == "carcinoma" else word for word in words])
    kept = [word for word in words if word not in SALT_WORDS]
    if kept and len(kept) < len(words):
        found.append(kept)
    joined = (" ".join(variant) for variant in found)
    return [variant for variant in dict.fromkeys(joined) if variant and variant != text]


# Conjunctions of a composite mention; "/" only between letters ("breast/ovarian cancer").
_COORDINATION = re.compile(r"\s*,?\s+(?:and/or|and|or)\s+|\s*,\s+|(?<=[a-z])/(?=[a-z])", re.IGNORECASE)


def split_composite(text: str) -> List[str]:
    """The conjuncts of a coordinated mention, each completed with the shared head word:
    "breast and ovarian cancer" -> ["breast cancer", "ovarian cancer"]; "colon, rectal and
    skin tumours" -> three. A conjunct of several words stands alone ("breast cancer and
    ovarian cancer"). The head is the last word of the last conjunct, which must have two
    words or more; otherwise, or without a conjunction, the mention is not split.

    text (str): The mention.
    RETURNS (List[str]): The parts, or [] when the mention is not composite.
    """
    parts = [part.strip() for part in _COORDINATION.split(text)]
    if len(parts) < 2 or not all(parts):
        return []
    last = parts[-1].split()
    if len(last) < 2:
        return []
    head = last[-1]
    return [part if len(part.split()) > 1 else f"{part} {head}" for part in parts[:-1]] + [parts[-1]]


def match_key(name: str) -> str:
    """The key of exact matching: the normal form without spaces, so that "beta-catenin",
    "beta catenin" and "betacatenin" meet.

    name (str): A mention or a KB name.
    RETURNS (str): The key.
    """
    return normalize(name).replace(" ", "")


def baseline_key(name: str) -> str:
    """The normal form of the field's exact-match dictionary baseline (issue 28's table): lower
    case, punctuation to spaces, a final s dropped from each word.

    name (str): A mention.
    RETURNS (str): The key.
    """
    words = re.sub(r"[^\w\s]", " ", name.lower()).split()
    return " ".join(w[:-1] if w.endswith("s") else w for w in words)


def split_identifiers(concept_id: str) -> List[str]:
    """The concepts of an identifier as the corpora write it: "A|B" (a composite mention) and
    "A+B" (a combination) name two concepts; "-1" and "" none.

    concept_id (str): The identifier column of a PubTator mention, or a `kb_id_`.
    RETURNS (List[str]): The concept identifiers, in order, without duplicates.
    """
    parts = [part.strip() for part in re.split(r"[|+]", concept_id)]
    return list(dict.fromkeys(part for part in parts if part and part != "-1"))
