"""Words and phone confusions the synthetic corpus draws from.

The words are common English words (and the number words SpeechOcean762 is full of), each
in CMUdict. The confusions are substitutions typical of Mandarin-L1 learners of English
(TH -> S/F, DH -> D/Z, V -> W, R -> L, L -> N, final voicing, tense/lax vowel merging):
plausible errors, so the corpus looks like the real data, not random phone noise.
"""

from __future__ import annotations

VOCABULARY = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "the", "a", "and", "to", "is", "it", "we", "you", "he", "she", "they", "my", "your", "this",
    "that", "there", "with", "for", "from", "not", "very", "all", "some", "many",
    "cat", "dog", "bird", "fish", "horse", "bear", "elephant", "apple", "bread", "water",
    "milk", "rice", "tea", "coffee", "house", "school", "teacher", "mother", "father", "brother",
    "sister", "friend", "family", "city", "river", "mountain", "tree", "flower", "garden", "car",
    "train", "ship", "book", "paper", "pencil", "table", "chair", "window", "door", "room",
    "morning", "evening", "night", "summer", "winter", "weather", "music", "picture", "story", "game",
    "go", "come", "see", "look", "read", "write", "sing", "speak", "think", "thank",
    "play", "walk", "run", "swim", "eat", "drink", "sleep", "open", "close", "buy",
    "like", "love", "want", "need", "help", "make", "take", "give", "bring", "call",
    "big", "small", "long", "short", "hot", "cold", "happy", "green", "red", "blue",
    "black", "white", "good", "nice", "beautiful", "early", "late", "together", "today", "tomorrow",
    "quiet", "really", "usually", "quickly", "again", "always", "never", "often", "here", "where",
)  # fmt: skip

# canonical phone -> plausible substitutes (ARPAbet, no stress)
CONFUSIONS = {
    "TH": ("S", "F", "T"), "DH": ("D", "Z"), "V": ("W", "F"), "W": ("V",), "R": ("L", "W"),
    "L": ("N", "R"), "N": ("L", "NG"), "NG": ("N",), "Z": ("S",), "ZH": ("SH", "JH"), "SH": ("S",),
    "JH": ("ZH", "CH"), "CH": ("SH",), "B": ("P",), "D": ("T",), "G": ("K",), "P": ("B",),
    "T": ("D",), "K": ("G",), "S": ("SH", "TH"), "F": ("P",), "HH": ("F",), "M": ("N",), "Y": ("IY",),
    "IH": ("IY",), "IY": ("IH",), "AE": ("EH", "AA"), "EH": ("AE", "EY"), "UH": ("UW",),
    "UW": ("UH",), "AH": ("AA", "AO"), "AA": ("AO", "AH"), "AO": ("OW", "AA"), "ER": ("AA", "AH"),
    "EY": ("EH",), "OW": ("AO",), "AY": ("AA",), "AW": ("AO",), "OY": ("OW",),
}  # fmt: skip

# (espeak voice, gender) pairs: several accents and speakers; children get a higher pitch.
VOICES = (
    ("en-us", "m"), ("en-us+m3", "m"), ("en-us+m7", "m"), ("en-gb+m2", "m"), ("en-029+m1", "m"),
    ("en-us+f2", "f"), ("en-us+f3", "f"), ("en-us+f4", "f"), ("en-gb+f2", "f"), ("en-029+f1", "f"),
)  # fmt: skip
