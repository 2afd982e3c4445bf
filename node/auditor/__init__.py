"""The offline auditor: verifies exported audit logs against trusted node cards.

``verify.verify`` runs the numbered steps of issue 5 (point 4) and returns every finding;
``report.write_report`` turns the result into one self-contained HTML page. See
docs/audit-export.md for the export format and the rules.
"""
