"""The audit checks: each module here defines ``CHECK`` (a governance.audit.Check).

Add a check by adding one file; see audits/README.md.
"""
