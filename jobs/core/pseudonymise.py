"""Keyed pseudonyms (HMAC-SHA256) for contact data, in Spark and in plain Python.

Spark computes the HMAC with its own functions (sha2, concat, unhex), so no Python UDF
ships rows to a Python worker; the pads are derived from the key once, on the driver,
and travel as binary literals. The Python twin gives the same pseudonym outside Spark
(the erasure command finds a person by email with it). Each pseudonym carries the key
version ("v1:<hex>") so a key rotation never mixes two keys' values unnoticed.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re

from pyspark.sql import Column
from pyspark.sql import functions as F

logger = logging.getLogger(__name__)

_BLOCK = 64  # SHA-256 block size in bytes (RFC 2104)
# ASCII whitespace only: the same set in Java regex and Python regex, unlike str.strip().
_SPACE = "[ \\t\\n\\x0B\\f\\r]"
_EDGE_SPACE = f"^{_SPACE}+|{_SPACE}+$"
_NOT_DIGIT = "[^0-9]"
_UPPER_ASCII = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_LOWER_ASCII = "abcdefghijklmnopqrstuvwxyz"
# Lowercasing must give the same text in the JVM and in Python, or the erasure command would
# miss a person. Two Unicode rules differ between them: the final sigma (context-dependent,
# judged differently) is folded to a plain sigma on both sides; and Java's lowercase follows
# the JVM's default locale (Turkic 'I' -> dotless i), so ASCII and U+0130 are lowered by
# explicit mapping before Java's lower() sees them.
_FINAL_SIGMA, _SIGMA = "\u03c2", "\u03c3"
_CAPITAL_I_DOT, _I_DOT = "\u0130", "i\u0307"


def hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    """The inner and outer padded keys of RFC 2104 (a key longer than a block is hashed first)."""
    if not key:
        raise ValueError("the pseudonym key must not be empty")
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    padded = key.ljust(_BLOCK, b"\x00")
    return bytes(b ^ 0x36 for b in padded), bytes(b ^ 0x5C for b in padded)


def _prefix(key_version: int) -> str:
    if key_version < 1:
        raise ValueError("the key version must be at least 1")
    return f"v{key_version}:"


# ---- plain Python ---------------------------------------------------------------------


def normalise_email(email: str | None) -> str | None:
    """Trim ASCII whitespace and lowercase (final sigma as sigma); None when nothing is left."""
    if email is None:
        return None
    value = re.sub(_EDGE_SPACE, "", email).lower().replace(_FINAL_SIGMA, _SIGMA)
    return value or None


def normalise_phone(phone: str | None) -> str | None:
    """Digits only, keeping a leading '+'; None when there are no digits."""
    if phone is None:
        return None
    trimmed = re.sub(_EDGE_SPACE, "", phone)
    digits = re.sub(_NOT_DIGIT, "", trimmed)
    if not digits:
        return None
    return ("+" if trimmed.startswith("+") else "") + digits


def pseudonym(value: str | None, key: bytes, key_version: int) -> str | None:
    """'v<version>:' + hex HMAC-SHA256 of the UTF-8 text (already normalised)."""
    if value is None:
        return None
    digest = hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()
    return _prefix(key_version) + digest


def email_pseudonym(email: str | None, key: bytes, key_version: int) -> str | None:
    """The pseudonym the job stores for this email (e.g. to find a person for erasure)."""
    return pseudonym(normalise_email(email), key, key_version)


def phone_pseudonym(phone: str | None, key: bytes, key_version: int) -> str | None:
    """The pseudonym the job stores for this phone or cell number."""
    return pseudonym(normalise_phone(phone), key, key_version)


# ---- Spark Columns --------------------------------------------------------------------


def normalise_email_col(email: Column) -> Column:
    """Spark twin of normalise_email."""
    trimmed = F.regexp_replace(email, _EDGE_SPACE, "")
    pre_lowered = F.replace(
        F.translate(trimmed, _UPPER_ASCII, _LOWER_ASCII), F.lit(_CAPITAL_I_DOT), F.lit(_I_DOT)
    )
    value = F.translate(F.lower(pre_lowered), _FINAL_SIGMA, _SIGMA)
    return F.when(value != "", value)


def normalise_phone_col(phone: Column) -> Column:
    """Spark twin of normalise_phone."""
    trimmed = F.regexp_replace(phone, _EDGE_SPACE, "")
    digits = F.regexp_replace(trimmed, _NOT_DIGIT, "")
    sign = F.when(trimmed.startswith("+"), F.lit("+")).otherwise(F.lit(""))
    return F.when(digits != "", F.concat(sign, digits))


def hmac_sha256_hex_col(value: Column, key: bytes) -> Column:
    """Lowercase hex HMAC-SHA256 of the UTF-8 bytes of a string column; null stays null."""
    ipad, opad = hmac_pads(key)
    inner = F.sha2(F.concat(F.lit(ipad), F.encode(value, "UTF-8")), 256)
    return F.sha2(F.concat(F.lit(opad), F.unhex(inner)), 256)


def pseudonym_col(value: Column, key: bytes, key_version: int) -> Column:
    """Spark twin of pseudonym (the value already normalised)."""
    return F.concat(F.lit(_prefix(key_version)), hmac_sha256_hex_col(value, key))


def email_pseudonym_col(email: Column, key: bytes, key_version: int) -> Column:
    """Spark twin of email_pseudonym."""
    return pseudonym_col(normalise_email_col(email), key, key_version)


def phone_pseudonym_col(phone: Column, key: bytes, key_version: int) -> Column:
    """Spark twin of phone_pseudonym."""
    return pseudonym_col(normalise_phone_col(phone), key, key_version)
