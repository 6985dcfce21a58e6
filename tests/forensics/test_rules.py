"""The shipped rules are valid and each one fires on its own real examples; user rules load, win,
and fail clearly."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logbook.errors import ConfigError
from logbook.forensics import CLASSES, classify_end, load_rules, rules_markdown
from logbook.forensics._needles import needles

SHIPPED = load_rules()


def test_classes_are_the_agreed_names() -> None:
    assert CLASSES == (
        "gpu_oom",
        "host_oom",
        "communication",
        "gpu_hardware",
        "numerical",
        "data_io",
        "python_exception",
        "fatal_signal",
        "configuration",
        "unknown",
    )


def test_shipped_rules_are_complete() -> None:
    assert len({r.id for r in SHIPPED}) == len(SHIPPED)
    for r in SHIPPED:
        assert r.source and r.summary and r.examples, r.id
        assert (r.crash_class is None) != (r.status is None), r.id
    if_configuration = {r.retryable for r in SHIPPED if r.crash_class == "configuration"}
    assert if_configuration == {False}


@pytest.mark.parametrize("rule", SHIPPED, ids=[r.id for r in SHIPPED])
def test_every_example_classifies_to_its_rule(rule: Any, tmp_path: Path) -> None:
    log = tmp_path / "stderr.log"
    for example in rule.examples:
        assert rule.regex.search(example), example
        assert all(any(s in example for s in n) for n in rule.needles), example
        log.write_text(f"step=10 loss=2.31\n{example}\nexiting\n")
        verdict = classify_end(returncode=1, log_paths=[log])
        assert verdict.rule == rule.id, (example, verdict)
        assert verdict.status == (rule.status or "crashed")
        assert verdict.crash_class == rule.crash_class
        assert verdict.retryable is rule.retryable
        assert example[:500] in verdict.evidence["lines"]


def test_rules_markdown_documents_every_rule() -> None:
    doc = rules_markdown()
    assert doc.startswith("| id | class | component | retryable | pattern | source |")
    for r in SHIPPED:
        row = next(line for line in doc.splitlines() if line.startswith(f"| `{r.id}` |"))
        assert (r.crash_class or r.status) in row
        assert r.source in row
        assert f"| {r.component or ''} |" in row  # the second level of cause (#19)
    assert "| `slurm-preempted` | status: preempted | maintenance | yes |" in doc
    assert "| `cuda-device-assert` | gpu_hardware | software_bug | no |" in doc
    assert "| `connection-reset` | communication (secondary) |  | yes |" in doc


def test_user_rules_come_first_and_replace_shipped_ids() -> None:
    rules = load_rules(
        [
            {
                "id": "shard-corrupt",
                "class": "data_io",
                "pattern": r"ShardCorrupt: (?P<shard>\S+)",
                "summary": "corrupt shard {shard}",
            },
            {
                "id": "cuda-oom",
                "class": "gpu_oom",
                "retryable": False,
                "pattern": "CUDA out of memory",
            },
        ]
    )
    assert [r.id for r in rules[:2]] == ["shard-corrupt", "cuda-oom"]
    assert [r.id for r in rules].count("cuda-oom") == 1
    assert rules[1].retryable is False and rules[1].origin == "user"
    assert rules[0].retryable is True and rules[0].source == "logbook.toml"
    assert len(rules) == len(SHIPPED) + 1


def test_user_configuration_rule_defaults_to_not_retryable() -> None:
    (rule,) = load_rules([{"id": "bad-yaml", "class": "configuration", "pattern": "yaml.scanner"}])[
        :1
    ]
    assert rule.retryable is False


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            {"id": "x", "class": "gpu-oom", "pattern": "a"},
            "crash rule \"x\" (logbook.toml [[crash.rule]] #1): unknown class 'gpu-oom'; known: gpu_oom, host_oom,",
        ),
        (
            {"id": "x", "class": "gpu_oom", "pattern": "CUDA("},
            "crash rule \"x\" (logbook.toml [[crash.rule]] #1): pattern 'CUDA(' is not a valid regular expression: missing ), unterminated subpattern at position 4",
        ),
        (
            {"id": "x", "class": "gpu_oom"},
            'crash rule "x" (logbook.toml [[crash.rule]] #1): missing "pattern"',
        ),
        (
            {"class": "gpu_oom", "pattern": "a"},
            'crash rule logbook.toml [[crash.rule]] #1: missing "id"',
        ),
        ({"id": "x", "pattern": "a"}, 'needs exactly one of "class" or "status"'),
        (
            {"id": "x", "class": "gpu_oom", "status": "preempted", "pattern": "a"},
            'needs exactly one of "class" or "status"',
        ),
        (
            {"id": "x", "status": "paused", "pattern": "a"},
            "unknown status 'paused'; known: preempted, interrupted",
        ),
        (
            {"id": "x", "class": "gpu_oom", "pattern": "a", "retriable": False},
            "unknown field 'retriable'; known: class,",
        ),
        (
            {"id": "x", "class": "gpu_oom", "pattern": "a", "retryable": "no"},
            "\"retryable\" must be a bool, not 'no'",
        ),
        (
            {"id": "My Rule", "class": "gpu_oom", "pattern": "a"},
            "id must be kebab-case like 'my-data-error', not 'My Rule'",
        ),
        (
            {"id": "x", "class": "gpu_oom", "pattern": "OOM", "summary": "OOM of {size}"},
            "summary uses {size} but the pattern has no group named 'size'; name it in the pattern: (?P<size>...)",
        ),
        (
            {"id": "x", "class": "gpu_oom", "pattern": "a", "examples": "a"},
            '"examples" must be a list, not',
        ),
        ("x", "logbook.toml [[crash.rule]] #1: a crash rule must be a table, not 'x'"),
    ],
)
def test_bad_user_rules_say_what_is_wrong(table: Any, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_rules([table])
    assert message in str(caught.value)


def test_duplicate_user_ids() -> None:
    rule = {"id": "mine", "class": "data_io", "pattern": "a"}
    with pytest.raises(ConfigError, match='crash rule id "mine" appears twice in logbook.toml'):
        load_rules([rule, dict(rule)])


def test_rules_from_a_logbook_toml(tmp_path: Path) -> None:
    from logbook.settings import load_toml

    toml = tmp_path / "logbook.toml"
    toml.write_text(
        "[[crash.rule]]\n"
        'id = "shard-corrupt"\n'
        'class = "data_io"\n'
        "retryable = false\n"
        "pattern = '''ShardCorrupt: (?P<shard>\\S+)'''\n"
        'summary = "corrupt shard {shard}"\n'
    )
    (rule,) = load_rules(load_toml(toml)["crash"]["rule"])[:1]
    assert rule.id == "shard-corrupt" and rule.regex.search("ShardCorrupt: 00042.bin")


# Needles make a rule skip text; a needle a match does not contain would hide that match.
PATTERNS = [r.pattern for r in SHIPPED] + [
    r"a(?:bc|bd)+e",
    r"x(?=yz)yz",
    r"(?:foo|)bar",
    r"(?i:Loss) is nan",
    r"(ab)\1c",
    r"(?>ab|cd)ef",
    r"a{2,3}b",
]
ALPHABET = "abcdefxyzLosinNCUDAR :()=.'0123456789\n"


@given(
    st.lists(
        st.sampled_from(ALPHABET + "|" + "CUDA out of memory. Tried to allocate "), max_size=40
    )
)
def test_needles_never_hide_a_match(parts: list[str]) -> None:
    text = "".join(parts)
    for pattern in PATTERNS:
        for line in text.split("\n"):
            if re.search(pattern, line):
                assert all(any(s in line for s in n) for n in needles(pattern)), (pattern, line)


def test_needles_of_simple_patterns() -> None:
    assert needles(r"CUDA out of memory\. Tried") == (frozenset({"CUDA out of memory. Tried"}),)
    assert needles(r"(?:foo|)bar") == (frozenset({"bar"}),)
    assert needles(r"(?i)loss") == ()
    assert needles(r"\d+ errors?") == (frozenset({" error"}),)


def test_the_rules_document_is_up_to_date() -> None:
    import subprocess
    import sys
    from pathlib import Path

    import logbook.forensics.rules as rules_module

    doc = Path(rules_module.__file__).with_name("crash_rules.md")
    out = subprocess.run(
        [sys.executable, "-m", "logbook.forensics"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert doc.read_text() == out, (
        "run: python -m logbook.forensics > logbook/forensics/crash_rules.md"
    )
