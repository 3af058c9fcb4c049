"""The command line of a job as it may be recorded (lock objects, lock files) or shown: secrets masked.

``ome-arrow-dask convert ... --storage-option key=AKIA... --storage-option secret=...``
carries credentials on its command line; the lock of a remote output is an object in the
very bucket, readable by everyone who may list it, and its refusal message is printed.
:func:`redacted_command` masks them with the rule of :func:`ome_arrow_dask.storage.redact`
(the same secret words), and strips user names, passwords, query strings (signed URLs) and
fragments from URLs.
"""

from __future__ import annotations

import re
import shlex
import sys
from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit

__all__ = ["redacted_argv", "redacted_command"]

MASK = "***"
"""What a secret value is replaced with."""

_STORAGE_OPTION = "--storage-option"
_PAIR = re.compile(r"(?P<name>[A-Za-z_][\w.-]*)=(?P<value>.*)", re.DOTALL)
_LONG_OPTION = re.compile(r"(?P<name>--?[A-Za-z][\w-]*)=(?P<value>.*)", re.DOTALL)


def _secret_name(name: str) -> bool:
    from ..storage import _SECRET_WORDS

    return any(word in name.lower() for word in _SECRET_WORDS)


def _scrub_url(text: str) -> str:
    """``scheme://user:pw@host/p?sig=..#f`` -> ``scheme://host/p``; text without ``://`` unchanged."""
    if "://" not in text:
        return text
    try:
        parts = urlsplit(text)
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit((parts.scheme, host, parts.path, "", ""))
    except ValueError:  # not parseable as a URL: keep nothing after the scheme's authority
        return text.partition("://")[0] + "://" + MASK


def _mask_pair(name: str, value: str) -> str:
    """``name=value`` with the value masked when the name may hold a secret or the value is structured (JSON)."""
    if _secret_name(name) or value.lstrip().startswith(("{", "[")):
        return f"{name}={MASK}"
    return f"{name}={_scrub_url(value)}"


def redacted_argv(argv: Sequence[str]) -> list[str]:
    """``argv`` with its secrets masked.

    Masked: the value of ``--storage-option K=V`` (also ``--storage-option=K=V``) and of any
    ``K=V`` / ``--K=V`` word whose name holds a secret word, every structured (JSON) option
    value, and the user info, query string and fragment of every URL.

    >>> redacted_argv(["convert", "s3://u:pw@b/in.zarr?X-Amz-Signature=1", "--storage-option", "secret=S",
    ...                "--storage-option=endpoint_url=http://h:9000", "key=AKIA"])
    ['convert', 's3://b/in.zarr', '--storage-option', 'secret=***', '--storage-option=endpoint_url=http://h:9000', \
'key=***']
    """
    shown: list[str] = []
    option_value = False
    for word in argv:
        word = str(word)
        if option_value:  # the word after --storage-option: always KEY=VALUE
            option_value = False
            pair = _PAIR.fullmatch(word)
            shown.append(_mask_pair(pair["name"], pair["value"]) if pair else MASK)
            continue
        if word == _STORAGE_OPTION:
            option_value = True
            shown.append(word)
            continue
        if word.startswith(_STORAGE_OPTION + "="):
            inner = word[len(_STORAGE_OPTION) + 1 :]
            pair = _PAIR.fullmatch(inner)
            shown.append(f"{_STORAGE_OPTION}={_mask_pair(pair['name'], pair['value']) if pair else MASK}")
            continue
        long_option = _LONG_OPTION.fullmatch(word)
        if long_option:
            name, value = long_option["name"], long_option["value"]
            shown.append(f"{name}={MASK}" if _secret_name(name) else f"{name}={_scrub_url(value)}")
            continue
        pair = _PAIR.fullmatch(word)
        if pair and "://" not in pair["name"]:
            shown.append(_mask_pair(pair["name"], pair["value"]))
            continue
        shown.append(_scrub_url(word))
    return shown


def redacted_command(argv: Sequence[str] | None = None) -> str | None:
    """The shell command line ``argv`` (default :data:`sys.argv`) with secrets masked (:func:`redacted_argv`).

    None for an interactive interpreter or ``python -c`` (no command to name).

    >>> redacted_command(["ome-arrow-dask", "convert", "a.tif", "s3://b/o.zarr", "--storage-option", "key=AKIA"])
    "ome-arrow-dask convert a.tif s3://b/o.zarr --storage-option 'key=***'"
    """
    argv = sys.argv if argv is None else argv
    if not argv or argv[0] in ("", "-", "-c"):
        return None
    return shlex.join(redacted_argv(argv))
