"""The one redaction rule: what of a user's secrets and private paths never reaches a run or a screen.

Three kinds of text are hidden:

- credentials inside URLs: ``scheme://user:secret@host`` keeps the user and loses the secret, and
  query parameters named like a credential (``?password=``, ``&token=``, ``api_key=``, ...) lose their
  values: tracking and Optuna storage URLs are printed and logged, and PostgreSQL's or a team
  server's URL commonly carries a password;
- values registered as secret (:func:`register_secret`): what an ``${oc.env:...}`` interpolation of
  conf/ resolved to, and the values of environment variables named like a credential (``HF_TOKEN``,
  ``*_API_KEY``, ``*_KEY``, ``*_PASSWORD``, ``*_SECRET_*``), replaced wherever they appear;
- this machine's private paths (:func:`private_paths`): the cache as ``cache:``, Python's import
  folders (tracebacks) dropped, the working folder as ``.``, the home folder as ``~``, so a traceback, a
  dataset's source or a config records no user name or layout.

Standard library only, no specbench import: every package (tracking, cli, sweep, registry) uses it.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any

MASK = "***"
# user:secret@ in any scheme://; the user stays (it says which account), the secret goes.
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^:/?#@\s]*):(?P<secret>[^@/?#\s]+)@")
_QUERY = re.compile(r"(?P<key>[?&;](?:[A-Za-z0-9_\-]*?)(?:password|passwd|pwd|token|secret|api[_-]?key|apikey|"
                    r"access[_-]?key|auth|credential|sig|signature)[A-Za-z0-9_\-]*=)(?P<value>[^&#;\s'\"]+)",
                    re.IGNORECASE)
# Whole words of a variable's name (HF_TOKEN, OPENAI_API_KEY, AWS_SECRET_ACCESS_KEY, PGPASSWORD), not parts
# of others (TOKENIZERS_PARALLELISM is no token).
_SECRET_NAME = re.compile(r"((^|_)(API_?KEY|TOKEN|PASSWORD|PASSWD|SECRET|CREDENTIALS?|ACCESS_?KEY)(_|$)|_KEY$|"
                          r"^PGPASSWORD$)", re.IGNORECASE)
_MIN_SECRET = 6  # shorter values ("1", "true") would mask ordinary text
_registered: set[str] = set()


def register_secret(value: Any) -> None:
    """Remember a value to hide wherever it appears (an ``${oc.env:...}`` resolution, a key read
    from the environment).  Short values are ignored: masking ``"1"`` would garble every number."""
    if isinstance(value, str) and len(value) >= _MIN_SECRET:
        _registered.add(value)


def secret_values() -> list[str]:
    """Registered values and those of credential-named environment variables, longest first (a
    secret that contains another is masked whole)."""
    env = {v for k, v in os.environ.items() if _SECRET_NAME.search(k) and len(v) >= _MIN_SECRET}
    return sorted(_registered | env, key=len, reverse=True)


def redact_url(text: str) -> str:
    """Credentials of URLs in ``text`` masked (user:secret@ and credential-named query values)."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    return _QUERY.sub(lambda m: f"{m['key']}{MASK}", text)


def _roots() -> list[tuple[str, str]]:
    """(this machine's folder, what it becomes), longest first: the specbench cache as ``cache:``,
    Python's import folders (a traceback's ``File "..."``, a slice shipped in the package) as nothing,
    the working folder as ``.``, the home folder as ``~``."""
    pairs = [(p.rstrip("/") + "/", "") for p in sys.path if p and os.path.isabs(p) and len(p) > 1]
    cache = os.environ.get("SPECBENCH_CACHE")
    if cache and os.path.isabs(cache):
        pairs.append((cache.rstrip("/") + "/", "cache:"))
    cwd = os.getcwd()
    if len(cwd) > 1:
        pairs.append((cwd.rstrip("/") + "/", "./"))
    home = os.path.expanduser("~")
    if len(home) > 1:
        pairs.append((home.rstrip("/") + "/", "~/"))
    return sorted(set(pairs), key=lambda p: len(p[0]), reverse=True)


def private_paths(text: str) -> str:
    """This machine's folders out of ``text`` (see :func:`_roots`): a run says ``specbench/pipeline/cell.py``
    or ``cache:models/x``, never ``/home/alice/...``; a bare home folder becomes ``~``."""
    if "/" not in text:
        return text
    for root, short in _roots():
        if root in text:
            text = text.replace(root, short)
    home = os.path.expanduser("~")
    if len(home) > 1 and home in text:
        text = re.sub(re.escape(home) + r"(?![\w.-])", "~", text)
    return text


def redact(text: str) -> str:
    """Every rule of this module applied to one string: URLs' credentials, secret values, the home folder."""
    if not isinstance(text, str) or not text:
        return text
    text = redact_url(text)
    for secret in secret_values():
        if secret in text:
            text = text.replace(secret, MASK)
    return private_paths(text)


def redact_obj(obj: Any) -> Any:
    """:func:`redact` over every string of a JSON-like value (dict keys kept, values redacted)."""
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, dict):
        return {k: redact_obj(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact_obj(v) for v in obj]
    return obj


def track_oc_env() -> None:
    """Make OmegaConf's ``${oc.env:NAME}`` resolver register every value it resolves as a secret, so the
    config a run logs holds ``***`` where conf/ interpolated the environment, never the value.  The
    registry's loader calls it once, before it resolves any file (OmegaConf imported only then)."""
    from omegaconf import OmegaConf
    from omegaconf.resolvers import oc

    def env(key: str, default: Any = _NO_DEFAULT) -> str | None:
        value = oc.env(key) if default is _NO_DEFAULT else oc.env(key, default)
        register_secret(value)
        return value

    register = getattr(OmegaConf, "register_resolver", None)  # OmegaConf 2.4; register_new_resolver before
    if register is not None:
        register("oc.env", env, replace=True, annotation_validation="off")
    else:
        OmegaConf.register_new_resolver("oc.env", env, replace=True)


_NO_DEFAULT = object()
