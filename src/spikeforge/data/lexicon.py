"""The phones of the Speech Commands words, for the auxiliary phone loss (`dataset.phones`, `method.phone_ctc`).

Pronunciations are the CMU Pronouncing Dictionary's (ARPAbet, stress marks dropped; the first entry where it has
several), for the 35 words of Speech Commands v2 (v1's 30 and `backward`, `forward`, `follow`, `learn`, `visual`).
The phone inventory is CMUdict's 39 phones, so the phone head has the same size for any word list.
"""

from __future__ import annotations

#: CMUdict's 39 phones (ARPAbet), in its order
PHONES = (
    "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G", "HH", "IH", "IY", "JH", "K",
    "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T", "TH", "UH", "UW", "V", "W", "Y", "Z", "ZH",
)

#: word → its phones (CMUdict 0.7b, stress dropped)
LEXICON = {
    "yes": "Y EH S", "no": "N OW", "up": "AH P", "down": "D AW N", "left": "L EH F T", "right": "R AY T",
    "on": "AA N", "off": "AO F", "stop": "S T AA P", "go": "G OW",
    "zero": "Z IH R OW", "one": "W AH N", "two": "T UW", "three": "TH R IY", "four": "F AO R", "five": "F AY V",
    "six": "S IH K S", "seven": "S EH V AH N", "eight": "EY T", "nine": "N AY N",
    "bed": "B EH D", "bird": "B ER D", "cat": "K AE T", "dog": "D AO G", "happy": "HH AE P IY", "house": "HH AW S",
    "marvin": "M AA R V IH N", "sheila": "SH IY L AH", "tree": "T R IY", "wow": "W AW",
    "backward": "B AE K W ER D", "forward": "F AO R W ER D", "follow": "F AA L OW", "learn": "L ER N",
    "visual": "V IH ZH UW AH L",
}

#: the longest pronunciation: phone targets are padded to this length
MAX_PHONES = max(len(p.split()) for p in LEXICON.values())


def phone_targets(word: str | None) -> list[int]:
    """The phone indices (into `PHONES`) of `word`, padded with −1 to `MAX_PHONES`; all −1 for silence (None)."""
    if word is None:
        return [-1] * MAX_PHONES
    if word not in LEXICON:
        raise ValueError(f"dataset.phones: no pronunciation for the word {word!r}; spikeforge.data.lexicon.LEXICON has "
                         f"{', '.join(sorted(LEXICON))}; add it there (CMUdict phones) or drop dataset.phones")
    ids = [PHONES.index(p) for p in LEXICON[word].split()]
    return ids + [-1] * (MAX_PHONES - len(ids))
