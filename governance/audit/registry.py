"""The checks registry: every ``audits/checks/<check_id>.py`` that defines ``CHECK``.

Adding a check is adding one file there (README: "Adding an audit check"). Files in the
folders named by ``GOVKIT_AUDIT_CHECKS`` (``os.pathsep``-separated) are loaded too, so an
organisation can keep its own checks outside the package.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil
from pathlib import Path

from governance.audit.model import Check
from governance.errors import GovernanceError

BUILTIN_PACKAGE = "audits.checks"
CHECKOUT_CHECKS = Path(__file__).resolve().parents[2] / "audits" / "checks"


class CheckDefinitionError(GovernanceError):
    """A check file that does not define a valid ``CHECK``."""


def _validate(check: object, where: str) -> Check:
    if not isinstance(check, Check):
        raise CheckDefinitionError(f"{where}: CHECK must be a governance.audit.Check")
    if check.kind == "source" and check.expectations is None:
        raise CheckDefinitionError(f"{where}: a source check needs expectations=")
    if check.kind == "store" and check.evaluate is None:
        raise CheckDefinitionError(f"{where}: a store check needs evaluate=")
    if check.kind not in ("source", "store"):
        raise CheckDefinitionError(f"{where}: kind must be source or store")
    if not check.articles:
        raise CheckDefinitionError(f"{where}: a check names the articles it relates to")
    return check


def load_checks(only: list[str] | None = None) -> list[Check]:
    """The registered checks, sorted by id (``only``: just those ids)."""
    found: dict[str, Check] = {}
    folders = list(filter(None, os.environ.get("GOVKIT_AUDIT_CHECKS", "").split(os.pathsep)))
    try:
        package = importlib.import_module(BUILTIN_PACKAGE)
    except ImportError:
        # An editable install made before audits/ became a package: load by path.
        folders.insert(0, str(CHECKOUT_CHECKS))
    else:
        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
            if info.name.startswith("_"):
                continue
            module = importlib.import_module(f"{BUILTIN_PACKAGE}.{info.name}")
            check = _validate(getattr(module, "CHECK", None), f"{module.__file__}")
            found[check.check_id] = check
    if not found and not folders:
        raise CheckDefinitionError("no audit checks found (audits/checks missing from the "
                                   "installation?)")
    for folder in folders:
        for path in sorted(Path(folder).glob("*.py")):
            if path.name.startswith("_"):
                continue
            spec = importlib.util.spec_from_file_location(f"govkit_audit_check_{path.stem}",
                                                          path)
            if spec is None or spec.loader is None:
                raise CheckDefinitionError(f"{path}: not a Python module")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            check = _validate(getattr(module, "CHECK", None), str(path))
            if check.check_id in found:
                raise CheckDefinitionError(f"{path}: check id {check.check_id!r} is already "
                                           "defined")
            found[check.check_id] = check
    if only:
        unknown = sorted(set(only) - set(found))
        if unknown:
            raise CheckDefinitionError(f"unknown check(s) {', '.join(unknown)}; known: "
                                       f"{', '.join(sorted(found))}")
        return [found[c] for c in sorted(set(only))]
    return [found[k] for k in sorted(found)]
