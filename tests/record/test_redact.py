"""Tests for logbook.record.redact: names, free text, URLs, environments, command lines."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logbook.record.redact import (
    REDACTED,
    is_secret_name,
    redact_command,
    redact_env,
    redact_field,
    redact_text,
    redact_url,
    redact_value,
)

# Realistic-looking but fake tokens, one per supported format.
TOKENS = {
    "github classic": "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8",
    "github oauth": "gho_" + "a" * 36,
    "github user-to-server": "ghu_" + "B" * 36,
    "github server": "ghs_" + "c1" * 18,
    "github refresh": "ghr_" + "d2" * 18,
    "github fine-grained": "github_pat_11ABCDEFG0" + "x" * 60,
    "gitlab": "glpat-" + "Ab3_dEf-GhIjKlMnOpQr",
    "aws access key id": "AKIAIOSFODNN7EXAMPLE",
    "aws session key id": "ASIAIOSFODNN7EXAMPLE",
    "slack bot": "xoxb-123456789012-abcdefABCDEF",
    "openai": "sk-proj-" + "Ab1" * 15,
    "anthropic": "sk-ant-api03-" + "Zy9" * 20,
    "stripe": "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc",
    "hugging face": "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh",
    "google": "AIza" + "SyA-" + "b" * 31,
    "jwt": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmN",
}


@pytest.mark.parametrize(
    "name",
    [
        "HF_TOKEN",
        "GITHUB_TOKEN",
        "hf_token",
        "AWS_SECRET_ACCESS_KEY",
        "WANDB_API_KEY",
        "OPENAI_APIKEY",
        "DB_PASSWORD",
        "MYSQL_PWD",
        "SMTP_PASS",
        "GH_PAT",
        "NGROK_AUTHTOKEN",
        "BASIC_AUTH",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "SESSION_COOKIE",
        "SSH_PRIVATE_KEY",
        "X_AMZ_SIGNATURE",
        "SENTRY_DSN",
        "--api-key",
        "--hf_token",
        "apiKey",
        "db.password",
    ],
)
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "PATH",
        "HOME",
        "TOKENIZERS_PARALLELISM",
        "GIT_AUTHOR_NAME",
        "KEYBOARD_LAYOUT",
        "SSH_AUTH_SOCK",
        "PWD",
        "OLDPWD",
        "CUDA_VISIBLE_DEVICES",
        "MASTER_PORT",
        "XAUTHORITY",
        "--lr",
        "--tokenizer_name",
    ],
)
def test_benign_names(name: str) -> None:
    assert not is_secret_name(name)


@pytest.mark.parametrize("kind", sorted(TOKENS))
def test_token_formats_are_redacted(kind: str) -> None:
    token = TOKENS[kind]
    text = f"line one\n+    value = call({token!r})  # {kind}\n"
    out = redact_text(text)
    assert token not in out
    assert REDACTED in out
    assert out.startswith("line one\n+    value = call(")


def test_url_credentials_keep_scheme_and_host() -> None:
    text = "pip install --index-url https://alice:s3cr3t@pypi.example.com/simple pkg"
    assert redact_text(text) == "pip install --index-url https://***@pypi.example.com/simple pkg"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('api_key = "abc123xyz"', 'api_key = "***"'),
        ("password: hunter22", "password: ***"),
        ("export DB_PASSWORD=correcthorse", "export DB_PASSWORD=***"),
        ("bash -c 'python t.py --hf-token abcdef'", "bash -c 'python t.py --hf-token ***'"),
        ("Authorization: Bearer abcdefghijklmnop1234", "Authorization: Bearer ***"),
        (
            "machine api.wandb.ai login user password 0123456789abcdef0123456789abcdef01234567",
            "machine api.wandb.ai login user password ***",
        ),
    ],
)
def test_secret_assignments(text: str, expected: str) -> None:
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "commit 0123456789abcdef0123456789abcdef01234567",
        "max_tokens=2048",
        "token = None",
        "tokenizer = AutoTokenizer.from_pretrained('gpt2')",
        "ssh://git@github.com/org/repo.git",
        "git@github.com:org/repo.git",
        "loss=2.31 lr=3e-4 step=120",
        "sk-short",
    ],
)
def test_ordinary_text_is_kept(text: str) -> None:
    assert redact_text(text) == text


def test_private_key_block() -> None:
    text = (
        "+config\n+-----BEGIN OPENSSH PRIVATE KEY-----\n+b3BlbnNzaC1rZXktdjEAAAAA\n"
        "+-----END OPENSSH PRIVATE KEY-----\n+after\n"
    )
    assert redact_text(text) == "+config\n+***\n+after\n"


def test_unterminated_private_key_is_hidden_to_the_end() -> None:
    text = "+-----BEGIN RSA PRIVATE KEY-----\n+MIIEowIBAAKCAQEA\n+more"
    assert redact_text(text) == "+***"


def test_large_text_is_fast_and_chunks_agree() -> None:
    token = TOKENS["github classic"]
    line = "+    loss = model(batch).loss  # compute the loss over some tokens\n"
    text = (line * 20_000 + f"+ remote = 'https://u:{token}@github.com/x'\n") * 2
    started = time.process_time()  # CPU time: a loaded machine's waits are not the regexes'
    out = redact_text(text)
    elapsed = time.process_time() - started
    assert token not in out
    assert out.count("https://***@github.com/x") == 2
    assert len(out.splitlines()) == len(text.splitlines())
    assert elapsed < 5  # about 0.5 s on a slow CI core; catches catastrophic backtracking


@given(st.text(), st.sampled_from(sorted(TOKENS)), st.text())
def test_inserted_token_never_survives(before: str, kind: str, after: str) -> None:
    token = TOKENS[kind]
    # Separate with spaces: a token glued to word characters is not a token any more.
    out = redact_text(f"{before} {token} {after}")
    assert token not in out


@given(st.text())
def test_redact_text_never_raises_and_is_idempotent(text: str) -> None:
    once = redact_text(text)
    assert redact_text(once) == once


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://user:ghp_abc@github.com/x/y.git", "https://github.com/x/y.git"),
        ("https://oauth2:tok@gitlab.com/x.git", "https://gitlab.com/x.git"),
        ("https://token@github.com/x", "https://github.com/x"),
        ("git@github.com:org/repo.git", "git@github.com:org/repo.git"),
        ("ssh://git@host:22/repo.git", "ssh://host:22/repo.git"),
        ("https://github.com/org/repo", "https://github.com/org/repo"),
        ("https://x.example/?access_token=abcdefgh", "https://x.example/?access_token=***"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_redact_value_and_env() -> None:
    assert redact_value("HF_TOKEN", "abc") == (REDACTED, "secret name")
    assert redact_value("MY_URL", "https://u:p@h/x") == ("https://***@h/x", "token-like value")
    assert redact_value("PATH", "/usr/bin") == ("/usr/bin", None)
    env = {"HOME": "/root", "GITHUB_TOKEN": "x", "NOTE": TOKENS["hugging face"]}
    assert redact_env(env) == {
        "HOME": ("/root", None),
        "GITHUB_TOKEN": (REDACTED, "secret name"),
        "NOTE": (REDACTED, "token-like value"),
    }


@pytest.mark.parametrize(
    ("name", "value", "shown"),
    [
        ("max_tokens", "2048", True),  # a count, needed for compute accounting
        ("tokens_per_step", "5.24e5", True),
        ("average_tokens_across_devices", "true", True),
        ("hub_private_repo", "false", True),
        ("hub_token", "null", True),
        ("hub_token", '"hf_abcdefghijklmnopqrstuvwxyz012345"', False),
        ("max_token", "2048", False),  # singular: could be the token itself
        ("tokens", '"abc123secret"', False),
        ("db_password", "12345678", False),
        ("api_tokens", '"s3cr3t-value"', False),
        ("tokens_per_step", '"4M"', True),
    ],
)
def test_values_that_cannot_be_secrets_stay(name: str, value: str, shown: bool) -> None:
    got, why = redact_value(name, value)
    assert (got == value and why is None) if shown else (got == REDACTED and why == "secret name")


def test_token_counts_on_a_command_line_stay() -> None:
    argv = ["train.py", "--tokens-per-step", "4096", "--max-tokens=4M", "--num-tokens", "sk-x"]
    argv += ["--hf-token", "12345", "--api-token=true2"]
    assert redact_command(argv) == [
        "train.py", "--tokens-per-step", "4096", "--max-tokens=4M", "--num-tokens", REDACTED,
        "--hf-token", REDACTED, f"--api-token={REDACTED}",
    ]  # fmt: skip


def test_redact_command() -> None:
    argv = [
        "python",
        "train.py",
        "--token",
        "abc",
        "--api-key=xyz",
        "--password",
        "pw",
        "HF_TOKEN=abc",
        "+db.password=x",
        "--use_auth_token",
        "--lr",
        "3e-4",
        "-p",
        "8080",
        "--push",
        TOKENS["hugging face"],
        "--repo",
        "https://u:p@github.com/x",
    ]
    assert redact_command(argv) == [
        "python",
        "train.py",
        "--token",
        REDACTED,
        "--api-key=" + REDACTED,
        "--password",
        REDACTED,
        "HF_TOKEN=" + REDACTED,
        "+db.password=" + REDACTED,
        "--use_auth_token",
        "--lr",
        "3e-4",
        "-p",
        "8080",
        "--push",
        REDACTED,
        "--repo",
        "https://***@github.com/x",
    ]


@given(st.lists(st.text()))
def test_redact_command_keeps_length(argv: list[str]) -> None:
    assert len(redact_command(argv)) == len(argv)


@pytest.mark.parametrize("prefix", ["Bearer ", "token=", "https://u:", "--api-key ", "key: ", "'"])
@pytest.mark.parametrize("kind", sorted(TOKENS))
def test_no_fragment_of_a_token_survives(prefix: str, kind: str) -> None:
    # Two patterns can both start on a token; whichever wins must hide all of it.
    token = TOKENS[kind]
    out = redact_text(f"x {prefix}{token}@host y")
    fragments = {token[i : i + 8] for i in range(len(token) - 7)}
    assert not any(fragment in out for fragment in fragments), out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Webhook URLs: the path is the secret, the host stays so a reader sees what it was.
        (
            "https://hooks.slack.com/services/T000/B000/XXXXXXXX",
            "https://hooks.slack.com/services/***",
        ),
        ("https://hooks.slack.com/workflows/T1/A2/3/abc", "https://hooks.slack.com/workflows/***"),
        ("https://discord.com/api/webhooks/123/abc-_XYZ", "https://discord.com/api/webhooks/***"),
        ("https://discordapp.com/api/webhooks/1/a", "https://discordapp.com/api/webhooks/***"),
        (
            "https://canary.discord.com/api/v10/webhooks/1/a",
            "https://canary.discord.com/api/v10/webhooks/***",
        ),
        (
            "https://contoso.webhook.office.com/webhookb2/a@b/IncomingWebhook/c/d",
            "https://contoso.webhook.office.com/webhookb2/***",
        ),
        (
            "https://outlook.office.com/webhook/a@b/IncomingWebhook/c/d",
            "https://outlook.office.com/webhook/***",
        ),
        ("https://hooks.zapier.com/hooks/catch/1/abc/", "https://hooks.zapier.com/hooks/***"),
        (
            "https://u:p@hooks.slack.com/services/T/B/X",
            "https://***@hooks.slack.com/services/***",
        ),
        # Within text: punctuation and JSON escapes around the URL are kept.
        (
            "alerts: https://hooks.slack.com/services/T/B/X, then (https://x.io/webhooks/1/k).",
            "alerts: https://hooks.slack.com/services/***, then (https://x.io/webhooks/***).",
        ),
        (
            '{"m": "see \\"https://discord.com/api/webhooks/1/abc\\" now"}',
            '{"m": "see \\"https://discord.com/api/webhooks/***\\" now"}',
        ),
        # Credentials in query strings; the other parameters stay.
        ("https://x.io/a?token=abc123&page=2#f", "https://x.io/a?token=***&page=2#f"),
        (
            "https://b.blob.x.net/c?sv=2020&sig=abc%2B1&se=1",
            "https://b.blob.x.net/c?sv=2020&sig=***&se=1",
        ),
        (
            "https://s3.x.com/b/k?X-Amz-Signature=de&X-Amz-Credential=AK/x",
            "https://s3.x.com/b/k?X-Amz-Signature=***&X-Amz-Credential=***",
        ),
        ("https://maps.x.com/api?key=AIzaXXXX&q=1", "https://maps.x.com/api?key=***&q=1"),
        # Not webhooks: kept.
        ("git@github.com:org/webhooks.git", "git@github.com:org/webhooks.git"),
        ("https://github.com/org/repo/tree/main", "https://github.com/org/repo/tree/main"),
        ("https://x.io/docs/webhooks", "https://x.io/docs/webhooks"),
    ],
)
def test_webhook_urls_and_query_credentials(text: str, expected: str) -> None:
    assert redact_text(text) == expected
    assert redact_text(expected) == expected  # idempotent: *** stays ***


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("password", "hunter2secret", REDACTED),
        ("hf_token", "abcdefgh", REDACTED),
        ("db_api_key", "abcdefgh", REDACTED),
        ("password", "null", "null"),  # literals and short values stay, as in text
        ("token", "abc", "abc"),
        ("key", "optimizer.lr", "optimizer.lr"),  # logbook's own JSON names things by "key"
        ("url", "https://hooks.slack.com/services/T/B/X", "https://hooks.slack.com/services/***"),
    ],
)
def test_redact_field(name: str, value: str, expected: str) -> None:
    assert redact_field(name, value) == expected


_PIECES = [
    "https://hooks.slack.com/services/T0/B0/XX",
    "https://discord.com/api/webhooks/1/tok",
    "https://u:p@host.io/x?token=abc&page=2",
    "?sig=abc",
    "&key=value",
    "password=hunter2secret",
    'password="hunter2"',
    "--api-key",
    "--hf-token abcdef",
    "***",
    TOKENS["github classic"],
    TOKENS["hugging face"],
    "Bearer abcdefghijklmnopqrstu",
    "loss=1.5",
]


@given(
    st.lists(st.sampled_from(_PIECES), max_size=8),
    st.lists(st.sampled_from(" \t\n,;:\"'()&?=/@"), max_size=8),
)
def test_redaction_of_secret_laden_text_is_idempotent(pieces: list[str], seps: list[str]) -> None:
    text = "".join(p + (seps[i % len(seps)] if seps else " ") for i, p in enumerate(pieces))
    once = redact_text(text)
    assert redact_text(once) == once
    assert "hunter2secret" not in once and "T0/B0/XX" not in once and "/1/tok" not in once


def test_large_text_redacted_once_is_not_scanned_again() -> None:
    from logbook.record import redact

    token = TOKENS["github classic"]
    text = "+ x = 1\n" * 20_000 + f"token {token}\n"
    once = redact_text(text)
    assert token not in once and (hash(once), len(once)) in redact._BIG_OUTPUTS
    copy = "".join(list(once))  # another string with the same text, as the store gets it
    assert redact_text(copy) == once
    fresh = text.replace("x = 1", "x = 2")  # never redacted: scanned
    assert token not in redact_text(fresh)
