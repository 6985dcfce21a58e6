"""Secret redaction for everything logbook records: env, command lines, URLs, git diffs.

Two tools, used together. `is_secret_name` judges a *name* (an environment variable,
a command-line option, a config key): a secret-looking name hides its value whatever
it is. `redact_text` judges *text*: it replaces values in well-known token formats
(GitHub, GitLab, AWS, Slack, OpenAI, Hugging Face, Google, Stripe, JWT, PEM private
keys), `name = value` assignments to secret-looking names, and credentials in URLs.
Both lean towards hiding too much: a published chronicle must never leak a key, and
a hidden `max_tokens` costs little (it is in the config snapshot anyway).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

REDACTED = "***"

# A name part containing one of these is secret (HF_TOKEN, DB_PASSWORD, NGROK_AUTHTOKEN,
# GOOGLE_APPLICATION_CREDENTIALS, OPENAI_APIKEY, X_AMZ_SIGNATURE).
_SECRET_SUBSTRINGS = (
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "PASSPHRASE",
    "CREDENTIAL",
    "PRIVATE",
    "COOKIE",
    "SIGNATURE",
    "APIKEY",
    "ACCESSKEY",
    "AUTHORIZATION",
)
# Short words are secret only as a whole part, so KEYBOARD, PATH, PASSTHROUGH-style
# compounds and GIT_AUTHOR_NAME stay visible while WANDB_API_KEY, GH_PAT, SMTP_PASS do not.
_SECRET_PARTS = frozenset({"KEY", "KEYS", "PASS", "PAT", "AUTH", "OAUTH", "CREDS", "DSN", "PWD"})
# Known-benign names that the rules above would hide. Kept short on purpose: each entry
# is a variable whose value is a path or a switch that helps explain a run.
#   TOKENIZERS_PARALLELISM  Hugging Face tokenizers switch ("true"/"false")
#   SSH_AUTH_SOCK           path of the ssh-agent socket, not a key
#   PWD / OLDPWD            the shell's working directories
#   PASSWORD_STORE_DIR      where `pass` keeps its (encrypted) store
_BENIGN_NAMES = frozenset(
    {"TOKENIZERS_PARALLELISM", "SSH_AUTH_SOCK", "PWD", "OLDPWD", "PASSWORD_STORE_DIR"}
)
# Splits FOO_BAR, foo-bar, fooBar and FOOBar into parts.
_NAME_PARTS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


def is_secret_name(name: str) -> bool:
    """Tell whether a variable, option or key name suggests its value is a secret.

    Args:
        name: an environment variable (`HF_TOKEN`), option (`--api-key`) or key
            (`db.password`); case and leading dashes do not matter.

    Returns:
        True when the value should be hidden.
    """
    return bool(_secret_parts(name))


def _secret_parts(name: str) -> list[str]:
    """The parts of a name that make it look secret (upper case)."""
    bare = name.strip().lstrip("-+~")
    if bare.upper() in _BENIGN_NAMES:
        return []
    found = []
    for part in _NAME_PARTS.findall(bare):
        upper = part.upper()
        # TOKENIZER/TOKENIZERS are the tokenizer, not a token.
        if upper in _SECRET_PARTS or (
            any(s in upper for s in _SECRET_SUBSTRINGS) and not upper.startswith("TOKENIZ")
        ):
            found.append(upper)
    return found


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[+-]?\d+)?[kmgtb]?", re.IGNORECASE)  # 2048, 5.2e5, 4M


def _harmless(name: str, value: str) -> bool:
    """A value that cannot be a secret whatever its name: a boolean or null (hub_private_repo =
    false), or a number under a name whose only hint is the plural TOKENS (max_tokens = 2048, a
    count that compute accounting needs)."""
    text = value.strip().strip('"').lower()
    if text in ("true", "false", "null", "none", ""):
        return True
    hints = _secret_parts(name)
    return bool(hints) and all(h == "TOKENS" for h in hints) and bool(_NUMBER.fullmatch(text))


# Names whose assigned value is hidden inside free text (diffs, shell strings).
_ASSIGN_NAME = r"(?:pass(?:word|wd|phrase)|secret|token|(?:api|access|private)[_-]?key)"
# Where a webhook URL's secret path begins: Slack's hooks host, or any host with a path segment
# that names a webhook (Discord's and discordapp's /api/webhooks/, Teams' *.webhook.office.com
# /webhookb2/, Outlook's /webhook/, Zapier's and Mattermost's /hooks/). The host excludes "@" so
# that user-info never passes for a host that stays visible.
_WEBHOOK_HOST_PATH = (
    r"hooks\.slack\.com/(?:services|workflows|triggers)/"
    r"|[^\s/?#@'\"\\<>]+/(?:[^\s/?#'\"\\<>]+/)*?(?:webhooks?|webhookb2|hooks)/"
)
# The rest of a URL: up to a space, a quote, a backslash (so a JSON escape such as \" is never
# eaten), a bracket, a comma or a semicolon. "***" matches too, and is replaced by itself, so
# redacting twice changes nothing.
_URL_TAIL = r"[^\s'\"\\<>()\[\]{},;]+"
# Query parameters that carry a credential; case does not matter (X-Amz-Signature, Azure's sig).
_QUERY_NAME = (
    r"(?:[\w.\-]*(?:token|secret|passw(?:or)?d|signature|credential|api[_\-]?key|access[_\-]?key)"
    r"|key|sig|auth|pass|pwd|code)"
)
_QUERY_VALUE = r"[^\s'\"\\<>()\[\]{}&#]+"
# Private key blocks span lines, so they get their own pass; the literal prefix makes it
# a fast scan. An unterminated block (a truncated diff) is hidden to the end.
_PEM_PATTERN = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----[\s\S]*?"
    r"(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|\Z)"
)
# Everything else is line-local (separators are [ \t], never a newline), so long text
# can be scanned in line-aligned chunks. One regex, one pass per chunk.
_TEXT_PATTERN = re.compile(
    "|".join(
        [
            # A webhook URL is a secret whatever name it is kept under (NOTIFY_URL, alerts): its
            # path is the credential. Host and the path up to the hook stay, so a reader still
            # sees what it was (https://hooks.slack.com/services/***). Tried before the user-info
            # rule, which would take the "://" of a webhook URL that has user-info too.
            # scheme://user:password@host keeps scheme and host. Both rules are anchored on
            # "://" rather than on the scheme, which would rescan every word of the text.
            r"(?P<url>(?<=[A-Za-z0-9])://)(?:"
            r"(?P<hookuser>[^\s/?#@'\"\\]+@)?(?P<hookhost>" + _WEBHOOK_HOST_PATH + r")"
            r"(?P<hookpath>" + _URL_TAIL + r")"
            r"|(?P<userinfo>[^\s/?#@:'\"]+:[^\s/?#'\"]*@))",
            # Vendor token formats (prefixes documented by each vendor).
            r"(?P<token>"
            r"\bgh[pousr]_[A-Za-z0-9]{20,}"  # GitHub classic and app tokens
            r"|\bgithub_pat_[A-Za-z0-9_]{20,}"  # GitHub fine-grained tokens
            r"|\bglpat-[A-Za-z0-9_\-]{20,}"  # GitLab personal access tokens
            r"|\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"  # AWS access key ids
            r"|\bxox[abposre]-[A-Za-z0-9\-]{10,}"  # Slack
            r"|\bsk-[A-Za-z0-9_\-]{20,}"  # OpenAI, Anthropic (sk-ant-...), DeepSeek...
            r"|\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}"  # Stripe
            r"|\bhf_[A-Za-z0-9]{30,}"  # Hugging Face
            r"|\bAIza[0-9A-Za-z_\-]{35}"  # Google API keys
            r"|\beyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*"  # JWT
            r")",
            # Authorization headers in curl lines and configs (RFC 6750 b64token characters).
            r"(?i:(?P<scheme>\b(?:bearer|basic)[ \t]+)(?P<credential>[A-Za-z0-9._~+/_\-]{16,}=*))",
            # name = "value", name: value, NAME=value with a secret-ish name; short values
            # and literals (max_token = 2048 is 4 digits, token = None) stay, and so does a
            # value already redacted (?token=***&page=2 keeps its &page=2).
            r"(?i:(?P<assign>" + _ASSIGN_NAME + r"['\"]?(?:[ \t]*[:=][ \t]*|[ \t]+(?=['\"]))"
            r"['\"]?)(?P<value>(?!(?:none|null|true|false)\b|\*\*\*)[^\s'\",;)}\]]{4,}))",
            # --name value inside a shell string ("bash -c '... --hf-token abc'").
            r"(?i:(?P<opt>--[\w\-]*" + _ASSIGN_NAME + r"[\w\-]*[ \t]+)"
            r"(?P<optvalue>[^\s'\"\-][^\s'\"]*))",
            # 40-hex keys (W&B, .netrc passwords) after a key-ish word; bare commit ids stay.
            r"(?i:(?P<hexname>\b(?:key|pat|auth|login|password)[^\w\n]{1,3})"
            r"(?P<hex>[0-9a-f]{40})\b)",
        ]
    )
)
# Credentials in a query string (?token=, &key=, &sig= of signed URLs). A pass of its own: a
# pattern that starts with one of two characters is skipped through in C, where one more
# alternative in _TEXT_PATTERN costs every position of the text.
_QUERY_PATTERN = re.compile(
    r"(?P<query>[?&](?i:" + _QUERY_NAME + r")=)(?P<queryvalue>" + _QUERY_VALUE + r")"
)
# sre holds the GIL for a whole sub() call (about 0.25 s per MB here); scanning in
# chunks lets the supervisor's output threads run in between.
_CHUNK = 64 * 1024


def _replace(match: re.Match[str]) -> str:
    """Build the replacement for one `_TEXT_PATTERN` match, keeping the harmless parts."""
    if match.group("hookhost") is not None:
        user = REDACTED + "@" if match.group("hookuser") else ""
        return match.group("url") + user + match.group("hookhost") + REDACTED
    kept = match.group("url") or match.group("scheme") or match.group("assign")
    kept = kept or match.group("opt") or match.group("hexname")
    if match.group("url") is not None:
        return kept + REDACTED + "@"
    return (kept or "") + REDACTED


def redact_text(text: str) -> str:
    """Replace secrets in free text (a diff, a log line, a shell string) with `REDACTED`.

    Args:
        text: any text; megabytes are fine.

    Returns:
        The text with token-like values, secret assignments, private keys and URL
        credentials replaced; everything else unchanged.
    """
    if len(text) <= _CHUNK:
        if "PRIVATE KEY-----" in text:
            text = _PEM_PATTERN.sub(REDACTED, text)
        return _redact_lines(text)
    if _BIG_OUTPUTS.get((hash(text), len(text))):
        return text  # this very text came out of redact_text: once is enough
    if "PRIVATE KEY-----" in text:
        text = _PEM_PATTERN.sub(REDACTED, text)
    parts: list[str] = []
    start = 0
    while start < len(text):
        # Cut after a newline so no line (and so no match) is split between chunks.
        cut = text.find("\n", start + _CHUNK)
        end = len(text) if cut < 0 else cut + 1
        parts.append(_redact_lines(text[start:end]))
        start = end
    out = "".join(parts)
    _remember(out)
    return out


def _redact_lines(text: str) -> str:
    """The line-local rules over whole lines of text."""
    if "=" in text:
        text = _QUERY_PATTERN.sub(_query, text)
    return _TEXT_PATTERN.sub(_replace, text)


def _query(match: re.Match[str]) -> str:
    return match.group("query") + REDACTED


# The last few large outputs of redact_text, by hash and length. A diff or a config file that a
# producer redacted is redacted again by the store on its way in (which sees every row, and
# cannot know who redacted what); redaction is idempotent, so for its own output it can skip the
# scan, about 0.25 s a megabyte. Python's string hash is keyed per process: not forgeable.
_BIG_OUTPUTS: dict[tuple[int, int], bool] = {}
_BIG_OUTPUTS_MAX = 32


def _remember(out: str) -> None:
    key = (hash(out), len(out))
    _BIG_OUTPUTS.pop(key, None)
    _BIG_OUTPUTS[key] = True
    while len(_BIG_OUTPUTS) > _BIG_OUTPUTS_MAX:
        try:
            del _BIG_OUTPUTS[next(iter(_BIG_OUTPUTS))]  # the oldest
        except (KeyError, StopIteration, RuntimeError):  # another thread got there first
            break


# A key that the `name = value` text rule hides the value of, as a whole key (db_password, hf_token).
_FIELD_NAME = re.compile(r"(?i:" + _ASSIGN_NAME + r")\Z")
_LITERALS = ("none", "null", "true", "false")


def redact_field(name: str, value: str) -> str:
    """Redact a string found under `name` inside structured data (a JSON document).

    The same as `redact_text` would do to `name: value` written out: the value is hidden whole
    when the name ends with password, secret, token or an api/access/private key (short values
    and literals stay), and redacted as text otherwise. Narrower than `is_secret_name` on purpose:
    keys in logbook's own JSON (key, auth_method, ...) name things, not secrets.
    """
    if _FIELD_NAME.search(name) and len(value) >= 4 and value.strip().lower() not in _LITERALS:
        return REDACTED
    return redact_text(value)


_URL_USERINFO = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)[^/?#]*@")


def redact_url(url: str) -> str:
    """Drop the user-info part of a URL, then redact what is left.

    `https://user:tok@github.com/x` becomes `https://github.com/x`; scp-like
    `git@github.com:org/repo.git` is not a URL with credentials and stays as it is.

    Args:
        url: a remote URL, index URL or similar.

    Returns:
        The URL without user name or password, with `redact_text` applied.
    """
    return redact_text(_URL_USERINFO.sub(r"\g<scheme>", url, count=1))


def redact_value(name: str, value: str) -> tuple[str, str | None]:
    """Redact one named value, saying why.

    Args:
        name: the variable or key name.
        value: its value.

    Returns:
        `(value, None)` when nothing was hidden, `(REDACTED, "secret name")` when
        the name is secret-looking, or `(partly redacted value, "token-like value")`
        when `redact_text` found a secret inside it (so a URL keeps its host).
    """
    if is_secret_name(name) and not _harmless(name, value):
        return REDACTED, "secret name"
    cleaned = redact_text(value)
    if cleaned != value:
        return cleaned, "token-like value"
    return value, None


def redact_env(env: Mapping[str, str]) -> dict[str, tuple[str, str | None]]:
    """Redact a whole environment.

    Args:
        env: variable names to values.

    Returns:
        For each name, `(value, reason)` as `redact_value` gives it; `reason` is
        None for values kept as they are.
    """
    return {name: redact_value(name, value) for name, value in env.items()}


# NAME=value arguments (env-style, Hydra overrides like +db.password=x).
_ASSIGN_ARG = re.compile(r"^(?P<name>[+~]{0,2}[A-Za-z_][A-Za-z0-9_.\-]*)=(?P<value>.*)$", re.S)


def redact_command(argv: Sequence[str]) -> list[str]:
    """Redact secrets in a command line, keeping its shape.

    Hides the value of `--token X`, `--api-key=X`, `--password X` and any option
    with a secret-looking name; `HF_TOKEN=abc`-style arguments with a secret name;
    and token-like values or URL credentials anywhere. Short options such as `-p`
    are left alone: too many tools use them for ports, paths or projects.

    Args:
        argv: the command and its arguments.

    Returns:
        A new list of the same length.
    """
    out: list[str] = []
    hide_next: str | None = None  # the secret-looking option whose value comes next
    for arg in argv:
        if hide_next is not None:
            name, hide_next = hide_next, None
            # A boolean flag such as --use-auth-token is followed by another option.
            if not arg.startswith("-") and not _harmless(name, arg):
                out.append(REDACTED)
                continue
        if arg.startswith("--") and len(arg) > 2:
            name, eq, value = arg.partition("=")
            if is_secret_name(name):
                if eq and not _harmless(name, value):
                    out.append(name + "=" + REDACTED)
                elif eq:
                    out.append(arg)
                else:
                    out.append(arg)
                    hide_next = name
                continue
        else:
            assign = _ASSIGN_ARG.match(arg)
            if assign is not None and is_secret_name(assign.group("name")):
                out.append(assign.group("name") + "=" + REDACTED)
                continue
        out.append(redact_text(arg))
    return out
