"""E-mail addresses. On the per-text path Presidio's EmailRecognizer stands for this spec."""

from governance.detection.recognizers import PatternSpec, RecognizerSpec

_SHAPE = r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}"

SPEC = RecognizerSpec(
    name="EmailRecognizer",
    entity_type="EMAIL_ADDRESS",
    category="contact.email",
    patterns=(PatternSpec("email", rf"(?<![\w.%+\-]){_SHAPE}(?![\w\-])", 0.5),),
    cell_pattern=_SHAPE,
    presidio_builtin="EmailRecognizer",
    context=("email", "e-mail", "mail", "邮箱", "电子邮件"),
    examples_valid=("j.doe@example.com", "wang.fang+news@mail.example.cn"),
    examples_invalid=("j.doe@example", "@example.com", "j.doe@example.c0m"),
)
