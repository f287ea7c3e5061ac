"""PII detection: recognizers, the Presidio analyzer built from them, and column classification."""
