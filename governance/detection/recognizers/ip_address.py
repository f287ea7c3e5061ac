"""IPv4 and IPv6 addresses. On the per-text path Presidio's IpRecognizer stands for this spec."""

from governance.detection.recognizers import PatternSpec, RecognizerSpec

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
_H = r"[0-9A-Fa-f]{1,4}"
_IPV6 = (
    rf"(?:{_H}:){{7}}{_H}|(?:{_H}:){{1,7}}:|(?:{_H}:){{1,6}}:{_H}|(?:{_H}:){{1,5}}(?::{_H}){{1,2}}"
    rf"|(?:{_H}:){{1,4}}(?::{_H}){{1,3}}|(?:{_H}:){{1,3}}(?::{_H}){{1,4}}"
    rf"|(?:{_H}:){{1,2}}(?::{_H}){{1,5}}|{_H}:(?::{_H}){{1,6}}|:(?:(?::{_H}){{1,7}}|:)"
    rf"|::(?:ffff(?::0{{1,4}})?:)?{_IPV4}|(?:{_H}:){{1,4}}:{_IPV4}"
)

SPEC = RecognizerSpec(
    name="IpRecognizer",
    entity_type="IP_ADDRESS",
    category="network.ip",
    patterns=(PatternSpec("ip", rf"(?<![\w.:])(?:{_IPV4}|{_IPV6})(?![\w.:])", 0.6),),
    cell_pattern=f"{_IPV4}|{_IPV6}",
    cell_score=0.6,
    presidio_builtin="IpRecognizer",
    context=("ip", "address", "ip地址"),
    examples_valid=("192.168.1.20", "2001:db8::8a2e:370:7334", "::1"),
    examples_invalid=("256.1.1.1", "192.168.1", "12:30:00"),
)
