"""govkit: personal data governance and compliance toolkit (GDPR, CCPA/CPRA, PIPL)."""

__version__ = "0.1.0"
