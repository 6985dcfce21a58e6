"""python -m logbook.forensics > logbook/forensics/crash_rules.md: the rules as a document."""

from logbook.forensics.rules import rules_markdown

print("# Crash rules\n")
print("How `logbook run` names the end of an attempt. Generated from `crash_rules.toml` by")
print("`python -m logbook.forensics > logbook/forensics/crash_rules.md`; a test keeps it current.")
print("Add your own in `logbook.toml` as `[[crash.rule]]` tables with the same fields (`id`,")
print("`pattern`, `class` or `status`, optional `retryable`, `summary`, `source`, `component`,")
print("`planned`); yours are tried first, and one with a shipped id replaces it. The component")
print("(#19) is the part the text points to; the `[xid]` and `[reason]` tables of the same file")
print("give it for Xid numbers the telemetry sees and for ends that no rule names.\n")
print(rules_markdown(), end="")
