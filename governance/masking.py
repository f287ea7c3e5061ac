"""Masking of personal data before it is shown, logged or stored in reports."""

from __future__ import annotations

import hashlib
import re


def mask_value(value: object, entity_type: str | None = None) -> str:
    """A masked form of ``value`` that keeps its shape but not enough to identify anyone.

    E-mail addresses keep the first character and the domain (``j***@example.com``);
    other values keep at most a quarter of their characters (first one, last two) and
    short values are masked entirely.
    """
    text = str(value)
    if entity_type == "EMAIL_ADDRESS" or ("@" in text and entity_type is None):
        local, _, domain = text.partition("@")
        return f"{local[:1]}***@{domain}" if domain else "***"
    n = len(text)
    if n < 8:
        return "*" * n
    keep_tail = 2
    return text[:1] + "*" * (n - 1 - keep_tail) + text[-keep_tail:]


def fingerprint(value: object, salt: str = "") -> str:
    """A short, stable, non-reversible reference to ``value`` (for logs that must correlate)."""
    return hashlib.sha256(f"{salt}\x00{value}".encode()).hexdigest()[:16]


def mask_free_text(text: str) -> str:
    """Free text typed by a person (a reason, a note) with the personal data the project's
    detector finds in it replaced by its type (``<EMAIL_ADDRESS>``), before it is stored
    anywhere kept for good (the audit log, legal holds)."""
    from governance.detection.text import detect_line, redact

    return mask_person_names(mask_addresses(redact(text, detect_line(text))))


def mask_addresses(text: str) -> str:
    """``text`` with anything written as an e-mail address replaced by ``<EMAIL_ADDRESS>``,
    a host without a dot included (the detector wants a dotted domain)."""
    return _ADDRESS.sub("<EMAIL_ADDRESS>", text)


# Anything written as an e-mail address, a host without a dot included
# (``tammy.bryant@internalmail``, an intranet's): the detector wants a dotted domain.
_ADDRESS = re.compile(r"(?<![\w.+'-])[\w.+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*(?![\w@-])")


_HAN_RUN = re.compile(r"(?<![\u4e00-\u9fff])[\u4e00-\u9fff]{2,4}(?![\u4e00-\u9fff])")


def _capitalised(word: str) -> bool:
    """Written as a name is: a capital and lower case ("Keiko"), or all capitals ("SILVA")."""
    return word[:1].isupper() and (any(c.islower() for c in word[1:]) or
                                   (len(word) > 1 and word.isupper()))


def _listed(word: str, given: frozenset[str], family: frozenset[str]) -> bool:
    """A listed given name or surname, or a hyphenated one with a listed part."""
    parts = [word.lower(), *word.lower().replace("’", "'").split("-")]
    return any(p in given or p in family for p in parts)


def mask_person_names(text: str) -> str:
    """``text`` with what reads as a person's name replaced by ``<PERSON>``, without a
    language model: two to four capitalised words in a row (particles such as "van der"
    between them) of which one is a listed given name or surname ("Keiko Silva"), and
    two to four Chinese characters standing alone that begin with a Chinese surname.
    It errs towards masking: a place such as "New York" is masked too."""
    from governance.detection.values import NAME_PARTICLES, NAME_WORD, name_lists

    given, family, chinese = name_lists()
    words = list(NAME_WORD.finditer(text))
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(words):
        if not _capitalised(words[i].group()):
            i += 1
            continue
        run = [words[i]]
        caps = words[i].group().isupper()    # a run is written one way: "KEIKO SILVA"
        j = i + 1
        while j < len(words) and len(run) < 6:
            gap = text[run[-1].end():words[j].start()]
            w = words[j].group()
            if gap == " " and ((_capitalised(w) and w.isupper() == caps)
                               or (not caps and w.lower() in NAME_PARTICLES)):
                run.append(words[j])
                j += 1
                continue
            break
        while run and not _capitalised(run[-1].group()):     # a name ends on a name
            run.pop()
        names = [m.group() for m in run if _capitalised(m.group())]
        if 2 <= len(names) <= 4 and any(_listed(n, given, family) for n in names):
            spans.append((run[0].start(), run[-1].end()))
        i = max(j, i + 1)
    # Two or three characters after a one-character surname, four after a two-character
    # one (欧阳娜娜); a name inside a sentence of Chinese (客户赵勇要求) is not found.
    spans += [(m.start(), m.end()) for m in _HAN_RUN.finditer(text)
              if m.group()[:2] in chinese or (len(m.group()) < 4 and m.group()[0] in chinese)]
    out, pos = [], 0
    for start, end in sorted(spans):
        if start < pos:
            continue
        out.append(text[pos:start])
        out.append("<PERSON>")
        pos = end
    out.append(text[pos:])
    return "".join(out)
