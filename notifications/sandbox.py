"""The sandbox email templates render in.

A standalone Django template engine (`SandboxEngine`): none of Django's default builtins
(so no `{% load %}`, `{% include %}`, `{% extends %}`, `{% block %}`, `{% debug %}`,
`{% url %}`, `{% csrf_token %}`, `{% for %}`...), no libraries, only the handful of tags and
filters registered in `register` below. On top of that every template is checked before it is
saved or rendered:

- only the placeholders of its email type may appear (`{{ customer_name }}`), never an
  attribute or item lookup (`{{ customer_name.upper }}`, `{{ x.0 }}`); an unknown name is
  an error with the list of the available ones;
- the values passed in are plain strings (see services.py), never model instances, so even
  a lookup that slipped through would reach nothing but a `str`.

HTML parts render with autoescape on; text parts and subjects with it off. Every problem
becomes a `TemplateProblem` with a message fit to show next to the field; nothing here
raises anything else for bad input."""

from __future__ import annotations

import difflib
import functools
import re

from django.template import Context, Library, TemplateSyntaxError, defaultfilters, defaulttags
from django.template.base import FilterExpression, Lexer, TokenType, VariableNode
from django.template.engine import Engine

MAX_TEMPLATE_LENGTH = 20_000
# How deep {% if %} (and {% spaceless %}) blocks may nest: far more than any email needs,
# far less than would exhaust Python's recursion limit when parsing or rendering.
MAX_NESTING = 20

# Tags a template may use, with the words that close or continue them.
ALLOWED_TAGS = {
    "if": defaulttags.do_if,
    "firstof": defaulttags.firstof,
    "comment": defaulttags.comment,
    "spaceless": defaulttags.spaceless,
}
_TAG_WORDS = {"if", "elif", "else", "endif", "firstof", "comment", "endcomment", "spaceless", "endspaceless"}

# Filters that only transform text: nothing marks a value safe, reaches an object or builds
# huge strings.
ALLOWED_FILTERS = {
    name: getattr(defaultfilters, name)
    for name in ("capfirst", "cut", "default", "default_if_none", "length", "linebreaks", "linebreaksbr",
                 "lower", "pluralize", "title", "truncatechars", "truncatewords", "upper", "yesno")
}
_BUILTIN_CONSTANTS = {"True", "False", "None"}

register = Library()  # the engine's only builtin library (this module)
for _name, _compile in ALLOWED_TAGS.items():
    register.tag(_name, _compile)
for _name, _func in ALLOWED_FILTERS.items():
    register.filter(_name, _func)


class SandboxEngine(Engine):
    """An Engine without Django's default builtins."""

    default_builtins: list[str] = []

    def find_template(self, name, dirs=None, skip=None):
        raise TemplateSyntaxError("Email templates cannot load other templates.")


def _engine(*, autoescape: bool) -> SandboxEngine:
    return SandboxEngine(
        builtins=["notifications.sandbox"], libraries={}, loaders=[], autoescape=autoescape, debug=True,
        string_if_invalid="",
    )


_HTML_ENGINE = None
_TEXT_ENGINE = None


def engine(*, html: bool) -> SandboxEngine:
    global _HTML_ENGINE, _TEXT_ENGINE
    if html:
        if _HTML_ENGINE is None:
            _HTML_ENGINE = _engine(autoescape=True)
        return _HTML_ENGINE
    if _TEXT_ENGINE is None:
        _TEXT_ENGINE = _engine(autoescape=False)
    return _TEXT_ENGINE


class TemplateProblem(ValueError):
    """A template that cannot be used; `str(exc)` is the message for the page."""


def _tag_list() -> str:
    return "{% if %}…{% elif %}…{% else %}…{% endif %}, {% firstof %}, {% comment %} and {% spaceless %}"


def _available(placeholders) -> str:
    return ", ".join("{{ " + p + " }}" for p in placeholders)


_OPENING_WORDS = {"if", "spaceless"}
_CLOSING_WORDS = {"endif", "endspaceless"}


def _scan_tokens(source: str) -> None:
    """Refuse tags outside the allowed set, and blocks nested too deep, before Django
    parses anything, with the line."""
    depth = 0
    in_comment = False
    for token in Lexer(source).tokenize():
        if token.token_type != TokenType.BLOCK:
            continue
        word = token.contents.split()[0] if token.contents.split() else ""
        if word not in _TAG_WORDS:
            shown = "{% " + word + " %}" if word else "{% %}"
            raise TemplateProblem(
                f"Line {token.lineno}: the tag {shown} is not allowed in email templates. "
                f"You can use {_tag_list()}.")
        if word in ("comment", "endcomment"):
            in_comment = word == "comment"
        elif in_comment:
            continue
        elif word in _OPENING_WORDS:
            depth += 1
            if depth > MAX_NESTING:
                raise TemplateProblem(
                    f"Line {token.lineno}: blocks are nested more than {MAX_NESTING} deep. "
                    "Simplify the template (use {% elif %} instead of an {% if %} inside an {% else %}).")
        elif word in _CLOSING_WORDS:
            depth = max(depth - 1, 0)


def _variables_of(expression: FilterExpression):
    """The Variables in an expression: the value and every filter argument."""
    var = expression.var
    if not isinstance(var, str):
        yield var
    for _func, args in expression.filters:
        for is_lookup, arg in args:
            if is_lookup:
                yield arg


def _condition_expressions(condition):
    if condition is None:
        return
    value = getattr(condition, "value", None)
    if isinstance(value, FilterExpression):
        yield value
    for side in ("first", "second"):
        part = getattr(condition, side, None)
        if part is not None:
            yield from _condition_expressions(part)


def _expressions_of(node):
    if isinstance(node, VariableNode):
        yield node.filter_expression
    for condition, _nodelist in getattr(node, "conditions_nodelists", []) or []:
        yield from _condition_expressions(condition)
    for expression in getattr(node, "vars", []) or []:
        if isinstance(expression, FilterExpression):
            yield expression


def _walk(nodelist):
    """Every node once. An `{% if %}`'s `nodelist` is a property joining the bodies of its
    `conditions_nodelists`: walk those only, or each level of nesting doubles the work
    (50 nested ifs would never finish)."""
    for node in nodelist:
        yield node
        conditions = getattr(node, "conditions_nodelists", None)
        if conditions:
            for _condition, child in conditions:
                yield from _walk(child)
            continue
        for attr in getattr(node, "child_nodelists", ()):
            child = getattr(node, attr, None)
            if child:
                yield from _walk(child)


def _check_variables(template, placeholders) -> None:
    allowed = set(placeholders) | _BUILTIN_CONSTANTS
    for node in _walk(template.nodelist):
        line = getattr(getattr(node, "token", None), "lineno", None)
        where = f"Line {line}: " if line else ""
        for expression in _expressions_of(node):
            for variable in _variables_of(expression):
                lookups = variable.lookups
                if lookups is None:  # a literal: "text" or 3
                    continue
                name = lookups[0]
                if len(lookups) > 1:
                    raise TemplateProblem(
                        f"{where}{{{{ {variable.var} }}}} looks up “{'.'.join(lookups[1:])}” on a placeholder. "
                        f"Only plain placeholders can be used, such as {{{{ {name} }}}}.")
                if name not in allowed:
                    close = difflib.get_close_matches(name, placeholders, n=1)
                    hint = f" Did you mean {{{{ {close[0]} }}}}?" if close else ""
                    raise TemplateProblem(
                        f"{where}unknown placeholder {{{{ {name} }}}}.{hint} "
                        f"Available: {_available(placeholders)}.")


_INVALID_FILTER = re.compile(r"Invalid filter: '([^']*)'")


def compile_template(source: str, *, placeholders, html: bool):
    """Parse and check `source`; the compiled Template, or TemplateProblem."""
    source = source or ""
    if len(source) > MAX_TEMPLATE_LENGTH:
        raise TemplateProblem(f"Keep templates under {MAX_TEMPLATE_LENGTH:,} characters.")
    _scan_tokens(source)
    try:
        template = engine(html=html).from_string(source)
    except TemplateSyntaxError as exc:
        debug = getattr(exc, "template_debug", None) or {}
        message = str(exc)
        where = f"Line {debug['line']}: " if debug.get("line") and "line" not in message else ""
        if (m := _INVALID_FILTER.search(message)) is not None:
            allowed = ", ".join(f"|{name}" for name in sorted(ALLOWED_FILTERS))
            message = f"the filter |{m.group(1)} is not allowed in email templates. You can use {allowed}."
        raise TemplateProblem(f"{where}{message}") from None
    except Exception as exc:  # the parser's own failures on odd input
        raise TemplateProblem(f"This template cannot be read: {exc}") from None
    _check_variables(template, placeholders)
    return template


@functools.lru_cache(maxsize=256)
def _compiled(source: str, placeholders: tuple, html: bool):
    # Parsing and checking a template costs far more than rendering it, and every posting
    # that emails renders three: keep the compiled ones (Django templates render safely from
    # many threads). A template that fails raises, and failures are not cached.
    return compile_template(source, placeholders=placeholders, html=html)


def render(source: str, values: dict, *, placeholders, html: bool) -> str:
    """Render `source` with `values` (plain strings/ints only), or raise TemplateProblem."""
    template = _compiled(source or "", tuple(placeholders), html)
    plain = {}
    for key, value in values.items():
        if value is not None and not isinstance(value, (str, int)):
            raise TypeError(f"Email template values must be str or int, not {type(value).__name__} ({key}).")
        plain[key] = "" if value is None else value
    try:
        return template.render(Context(plain, autoescape=html))
    except Exception as exc:
        raise TemplateProblem(f"This template could not be rendered: {exc}") from None


def render_subject(source: str, values: dict, *, placeholders) -> str:
    """A subject is one line of plain text: line breaks collapse to spaces."""
    text = render(source, values, placeholders=placeholders, html=False)
    return " ".join(text.split())[:250]
