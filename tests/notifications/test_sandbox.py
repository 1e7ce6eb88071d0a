"""The template sandbox: only the placeholders of an email type, only a few safe tags and
filters, and a clear message (never an exception) for anything else."""

import pytest

from crm.models import Customer
from notifications import sandbox
from notifications.kinds import EMAIL_TYPES

PLACEHOLDERS = ("customer_name", "amount", "balance", "store_name")
VALUES = {"customer_name": "<b>Ada</b> & co", "amount": "$12.50", "balance": "$57.50", "store_name": "Demo"}


def render(source, *, html=True, values=VALUES):
    return sandbox.render(source, values, placeholders=PLACEHOLDERS, html=html)


def problem(source, *, html=True) -> str:
    with pytest.raises(sandbox.TemplateProblem) as info:
        render(source, html=html)
    return str(info.value)


def test_render_html_substitutes_placeholders_and_escapes_their_values():
    # given / when
    out = render("<p>Hi {{ customer_name }}, you got {{ amount }}.</p>")
    # then
    assert out == "<p>Hi &lt;b&gt;Ada&lt;/b&gt; &amp; co, you got $12.50.</p>"


def test_render_text_keeps_values_as_they_are():
    # given / when
    out = render("Hi {{ customer_name }}", html=False)
    # then
    assert out == "Hi <b>Ada</b> & co"


def test_render_if_else_and_allowed_filters_work():
    # given
    source = "{% if amount %}{{ amount|upper }}{% else %}none{% endif %} {{ store_name|lower }} {% firstof balance amount %}"
    # when
    out = sandbox.render(source, VALUES, placeholders=PLACEHOLDERS, html=False)
    # then
    assert out == "$12.50 demo $57.50"


def test_unknown_placeholder_is_rejected_with_the_available_ones():
    # given / when
    message = problem("Hello {{ first_name }}")
    # then
    assert message.startswith("Line 1: unknown placeholder {{ first_name }}.")
    assert "Available: {{ customer_name }}, {{ amount }}, {{ balance }}, {{ store_name }}." in message


def test_misspelt_placeholder_suggests_the_right_one():
    # given / when
    message = problem("Line one\nHello {{ custmer_name }}")
    # then
    assert message.startswith("Line 2: unknown placeholder {{ custmer_name }}. Did you mean {{ customer_name }}?")


def test_unknown_placeholder_in_an_if_or_a_filter_argument_is_rejected():
    # given / when / then
    assert "unknown placeholder {{ secret }}" in problem("{% if secret %}x{% endif %}")
    assert "unknown placeholder {{ secret }}" in problem("{{ amount|default:secret }}")
    assert "unknown placeholder {{ secret }}" in problem("{% firstof secret amount %}")
    assert "unknown placeholder {{ settings }}" in problem("{% if not settings == 1 %}x{% endif %}")


@pytest.mark.parametrize("source, expected", [
    ("{% if amount %}never closed", "Unclosed tag on line 1: 'if'"),
    ("{{ }}", "Empty variable tag on line 1"),
    ("{{ amount|}}", "Line 1:"),
    ("{% endif %}", "Invalid block tag on line 1: 'endif'"),
    ("{% if %}x{% endif %}", "Line 1:"),
    ("{{ amount|truncatechars }}", "truncatechars requires 2 arguments, 1 provided"),
])
def test_broken_syntax_is_a_clear_message(source, expected):
    # given / when
    message = problem(source)
    # then
    assert expected in message


@pytest.mark.parametrize("tag", ["load", "include", "extends", "block", "debug", "url", "csrf_token", "for", "with",
                                 "now", "autoescape", "filter", "cycle", "lorem", "widthratio", "templatetag",
                                 "verbatim", "regroup", "partialdef", "translate", "static"])
def test_tags_outside_the_allowed_set_are_refused_by_name(tag):
    # given
    source = "Hi\n{% " + tag + ' "x" %}'
    # when
    message = problem(source)
    # then
    assert message == (
        "Line 2: the tag {% " + tag + " %} is not allowed in email templates. You can use "
        "{% if %}…{% elif %}…{% else %}…{% endif %}, {% firstof %}, {% comment %} and {% spaceless %}.")


@pytest.mark.parametrize("source, lookup", [
    ("{{ customer_name.upper }}", "upper"),
    ("{{ amount.0 }}", "0"),
    ("{{ customer_name.encode.hex }}", "encode.hex"),
    ("{% if customer_name.isalpha %}x{% endif %}", "isalpha"),
    ("{{ amount|default:customer_name.title }}", "title"),
])
def test_attribute_access_on_placeholders_is_refused(source, lookup):
    # given / when
    message = problem(source)
    # then
    assert f"looks up “{lookup}” on a placeholder. Only plain placeholders can be used" in message


def test_underscore_attributes_are_refused():
    # given / when
    message = problem("{{ customer_name.__class__.__mro__ }}")
    # then
    assert "may not begin with underscores" in message


@pytest.mark.parametrize("name", ["safe", "safeseq", "escape", "pprint", "date", "stringformat", "center", "ljust",
                                  "make_list", "join", "urlize", "json_script", "add"])
def test_filters_outside_the_allowed_set_are_refused_with_the_list(name):
    # given / when
    message = problem("{{ amount|" + name + " }}")
    # then
    assert message.startswith(f"Line 1: the filter |{name} is not allowed in email templates. You can use |capfirst")


def test_values_must_be_plain_strings_or_ints(db):
    # given
    customer = Customer(name="Ada", member_id="M1")
    # when / then
    with pytest.raises(TypeError, match="must be str or int, not Customer"):
        sandbox.render("{{ customer_name }}", {"customer_name": customer}, placeholders=PLACEHOLDERS, html=True)


def test_a_template_over_the_size_limit_is_refused():
    # given / when
    message = problem("x" * (sandbox.MAX_TEMPLATE_LENGTH + 1))
    # then
    assert message == "Keep templates under 20,000 characters."


def test_subject_is_one_line():
    # given / when
    subject = sandbox.render_subject("Hi\n{{ customer_name }}\r\n  there", VALUES, placeholders=PLACEHOLDERS)
    # then
    assert subject == "Hi <b>Ada</b> & co there"


def test_the_engine_has_no_template_loading_or_default_builtins():
    # given
    engine = sandbox.engine(html=True)
    # when / then
    assert engine.builtins == ["notifications.sandbox"]
    assert engine.template_libraries == {}
    assert set(engine.template_builtins[0].tags) == {"if", "firstof", "comment", "spaceless"}
    with pytest.raises(sandbox.TemplateSyntaxError):
        engine.get_template("base.html")


@pytest.mark.parametrize("kind", sorted(EMAIL_TYPES))
def test_every_default_template_renders_with_its_sample_values(kind):
    # given
    t = EMAIL_TYPES[kind]
    # when
    subject = sandbox.render_subject(t.default_subject, t.sample, placeholders=t.placeholders)
    text = sandbox.render(t.default_text, t.sample, placeholders=t.placeholders, html=False)
    html = sandbox.render(t.default_html, t.sample, placeholders=t.placeholders, html=True)
    # then
    assert subject and "{" not in subject
    assert t.sample.get("amount", t.sample["store_name"]) in text + subject
    assert html.lstrip().startswith("<div") and "</p>" in html


def test_nested_blocks_are_checked_in_time_linear_in_their_size():
    # given: blocks nested as deep as allowed
    depth = sandbox.MAX_NESTING
    source = "{% if amount %}" * depth + "{{ customer_name }}" + "{% endif %}" * depth
    # when
    template = sandbox.compile_template(source, placeholders=PLACEHOLDERS, html=True)
    visited = list(sandbox._walk(template.nodelist))
    # then: each node once (an if's body used to be walked twice per level: 2**depth)
    assert len(visited) == depth + 1
    assert render(source) == "&lt;b&gt;Ada&lt;/b&gt; &amp; co"


@pytest.mark.parametrize("opening, closing", [("{% if amount %}", "{% endif %}"),
                                              ("{% if amount %}x{% else %}", "{% endif %}"),
                                              ("{% spaceless %}", "{% endspaceless %}")])
def test_blocks_nested_too_deep_are_refused_with_a_clear_message(opening, closing):
    # given
    depth = sandbox.MAX_NESTING + 1
    source = "Hi\n" + opening * depth + "x" + closing * depth
    # when
    message = problem(source)
    # then
    assert message.startswith(f"Line 2: blocks are nested more than {sandbox.MAX_NESTING} deep.")


def test_nesting_inside_a_comment_or_side_by_side_is_not_counted():
    # given
    many = "{% if amount %}x{% endif %}" * (sandbox.MAX_NESTING + 5)
    commented = "{% comment %}" + "{% if amount %}" * 30 + "{% endcomment %}"
    # when / then
    assert render(many, html=False) == "x" * (sandbox.MAX_NESTING + 5)
    assert render(commented + "ok", html=False) == "ok"
