"""Compliance audit definitions: one check per file in ``checks/``, report templates."""
