"""The offline auditor: verifies exported audit logs against trusted node cards.

``verify.verify`` runs the numbered steps of issue 5 (point 4) and returns every finding;
``report.write_report`` turns the result into one self-contained HTML page. See
docs/audit-export.md for the export format and the rules.
"""

DEFAULT_GRACE_S = 60
"""How late a destruction may be before the auditor reports it. Here rather than in
``verify`` so that the command line can show it without loading the auditor."""
