"""Parser: valid queries -> AST/structure, invalid ones -> Jira's exact message and position.

The error table is Jira's own: inputs and messages from Jira's functional test of the JQL parser
(TestJqlParsing) and the examples of ``POST /rest/api/3/jql/parse`` in the Cloud swagger.
"""

from __future__ import annotations

import pytest

from node.jql import JqlError, parse
from node.jql.ast import And, Empty, FieldRef, Function, ListOperand, Not, Or, Terminal, Value
from node.jql.lexer import RESERVED_WORDS

OPS = "The valid operators are '=', '!=', '<', '>', '<=', '>=', '~', '!~', 'IN', 'NOT IN', 'IS' and 'IS NOT'."
ESC = "The valid escape sequences are \\', \\\", \\t, \\n, \\r, \\\\, '\\ ' and \\uXXXX."
P = "Error in the JQL Query: "
OP = "Error in JQL Query: "  # Jira's bad-operand message really lacks "the"
NUM = "Numbers must be between -9,223,372,036,854,775,808 and 9,223,372,036,854,775,807."

ERRORS = [
    # (query, full message, line, column)
    ("comment ~ 'test", P + "The quoted string 'test' has not been completed. (line 1, character 11)", 1, 11),
    (
        "comment ~ 'test\n",
        P + "The quoted string 'test ' has not been completed. (line 1, character 11)",
        1,
        11,
    ),
    (
        'priority="test\nword',
        P + "The quoted string 'test word' has not been completed. (line 1, character 10)",
        1,
        10,
    ),
    ("comment ~ '", P + "The quoted string has not been completed. (line 1, character 11)", 1, 11),
    (
        "comme\\unt ~ 'test",
        P + f"'\\un' is an illegal JQL escape sequence. {ESC} (line 1, character 6)",
        1,
        6,
    ),
    ("status = x\\k", P + f"'\\k' is an illegal JQL escape sequence. {ESC} (line 1, character 11)", 1, 11),
    ("status = x\\", P + f"The escape sequence has not been completed. {ESC} (line 1, character 11)", 1, 11),
    (
        "mine{www = qwwr",
        P
        + "The character '{' is a reserved JQL character. You must enclose it in a string or use the escape "
        "'\\u007b' instead. (line 1, character 5)",
        1,
        5,
    ),
    (
        "minewww# = qwwr",
        P
        + "The character '#' is a reserved JQL character. You must enclose it in a string or use the escape "
        "'\\u0023' instead. (line 1, character 8)",
        1,
        8,
    ),
    (
        "minewww =\u007fqwwr",
        P
        + "The character 'U+007F' on line 1 at position 10 must be escaped. Use the escape '\\u007f' instead. "  # noqa: E501
        "(line 1, character 10)",
        1,
        10,
    ),
    (
        'mqwwr="\u007f this is broken"',
        P
        + "The character 'U+007F' on line 1 at position 8 must be escaped. Use the escape '\\u007f' instead. "
        "(line 1, character 8)",
        1,
        8,
    ),
    (
        "aaaaa=-3482094382084092840932809482",
        P + f"'-3482094382084092840932809482' is not a valid number. {NUM} (line 1, character 7)",
        1,
        7,
    ),
    (
        "cf[1002020202002020202020202020020202822]=a",
        P + f"'1002020202002020202020202020020202822' is not a valid number. {NUM} (line 1, character 4)",
        1,
        4,
    ),
    ("a =b order", P + "Expecting 'by' before the end of the query.", 1, 11),
    ("a =b order summary", P + "Expecting 'by' but got 'summary'. (line 1, character 12)", 1, 12),
    ("a =b order by", P + "Expecting a field name at the end of the query.", 1, 14),
    (
        "a =b order by asc",
        P + "Expecting a field name but got 'asc'. You must surround 'asc' in quotation marks to use it as a "
        "field name. (line 1, character 15)",
        1,
        15,
    ),
    (
        "a =b order by ajsks blah",
        P + "Expecting either 'ASC' or 'DESC' but got 'blah'. (line 1, character 21)",
        1,
        21,
    ),
    ('a =b order by "" desc', P + "A field name cannot be empty. (line 1, character 15)", 1, 15),
    ("'' = c", P + "A field name cannot be empty. (line 1, character 1)", 1, 1),
    ("a = ''()", P + "A function name cannot be empty. (line 1, character 5)", 1, 5),
    ("a", P + f"Expecting operator before the end of the query. {OPS}", 1, 2),
    ("a blah >", P + f"Expecting operator but got 'blah'. {OPS} (line 1, character 3)", 1, 3),
    ("invalid query", P + f"Expecting operator but got 'query'. {OPS} (line 1, character 9)", 1, 9),
    ("a =a and j not is empty", P + "Expecting 'IN' but got 'is'. (line 1, character 16)", 1, 16),
    ("a =a and j is ! empty", P + "Expecting 'NOT' but got '!'. (line 1, character 15)", 1, 15),
    ("cf", P + "Expecting '[' before the end of the query.", 1, 3),
    ("a = b and not (cf = 6)", P + "Expecting '[' but got '='. (line 1, character 19)", 1, 19),
    ("cf[", P + "Expecting a custom field id (a positive number) before the end of the query.", 1, 4),
    (
        "cf[ = 9",
        P + "Expecting a custom field id (a positive number) but got '='. (line 1, character 5)",
        1,
        5,
    ),
    (
        "cf[] = 1",
        P + "Expecting a custom field id (a positive number) but got ']'. (line 1, character 4)",
        1,
        4,
    ),
    (
        "cf[-29829] = ",
        P + "Expecting a custom field id (a positive number) but got '-29829'. (line 1, character 4)",
        1,
        4,
    ),
    ("cf[29829 = world", P + "Expecting ']' but got '='. (line 1, character 10)", 1, 10),
    ("cf[29829", P + "Expecting ']' before the end of the query.", 1, 9),
    ("a = func(", P + "Expecting ')' before the end of the query.", 1, 10),
    ("a = func(, and not (a = x)", P + "Expecting ')' but got ','. (line 1, character 10)", 1, 10),
    ("bas=func(bad,)", P + "Function argument must be specified. (line 1, character 14)", 1, 14),
    ("bas=func(bad,", P + "Expecting a function argument at the end of the query.", 1, 14),
    (
        "k = func(!",
        P
        + "Expecting a function argument but got '!'. You must surround '!' in quotation marks to use it as an "  # noqa: E501
        "argument. (line 1, character 10)",
        1,
        10,
    ),
    ("k = func(abc, jk!)", P + "Expecting ')' or ',' but got '!'. (line 1, character 17)", 1, 17),
    ("(a=b and c = d", P + "Expecting ')' before the end of the query.", 1, 15),
    ("a=b or (c=d and not l ~ kate", P + "Expecting ')' before the end of the query.", 1, 29),
    ("b in ((12, (288)", P + "Expecting ')' before the end of the query.", 1, 17),
    ("abc IN ((foo) abc = a", P + "Expecting ')' but got 'abc'. (line 1, character 15)", 1, 15),
    ("a in (x y)", P + "Expecting ',' or ')' but got 'y'. (line 1, character 9)", 1, 9),
    ("a=", OP + "Expecting either a value, list or function before the end of the query.", 1, 3),
    (
        "a=!",
        OP
        + "Expecting either a value, list or function but got '!'. You must surround '!' in quotation marks to "  # noqa: E501
        "use it as a value. (line 1, character 3)",
        1,
        3,
    ),
    ("a=b c=d", P + "Expecting either 'OR' or 'AND' but got 'c'. (line 1, character 5)", 1, 5),
    ("a=b !c=d", P + "Expecting either 'OR' or 'AND' but got '!'. (line 1, character 5)", 1, 5),
    (
        "project = ENG status",
        P + "Expecting either 'OR' or 'AND' but got 'status'. (line 1, character 15)",
        1,
        15,
    ),
    (
        "project = ENG\nfoo = 1",
        P + "Expecting either 'OR' or 'AND' but got 'foo'. (line 2, character 1)",
        2,
        1,
    ),
    (
        "a=(a,(,bad))",
        OP
        + "Expecting either a value, list or function but got ','. You must surround ',' in quotation marks to "  # noqa: E501
        "use it as a value. (line 1, character 7)",
        1,
        7,
    ),
    ("a = ((c,d), d, e, f, yyy) and", P + "Expecting a field name at the end of the query.", 1, 30),
    ("order by a desc d", P + "Expecting ',' but got 'd'. (line 1, character 17)", 1, 17),
    (
        ", a = b",
        P
        + "Expecting a field name but got ','. You must surround ',' in quotation marks to use it as a field "
        "name. (line 1, character 1)",
        1,
        1,
    ),
    (
        "[brenden] = a",
        P + "Expecting a field name but got '['. Did you mean 'cf['? (line 1, character 1)",
        1,
        1,
    ),
    ("a was", OP + "Expecting either a value, list or function before the end of the query.", 1, 6),
    ('a not was "Open"', P + "Expecting 'IN' but got 'was'. (line 1, character 7)", 1, 7),
    (
        "summary ~ select",
        P + "'select' is a reserved JQL word. You must surround it in quotation marks to use it in a query. "
        "(line 1, character 11)",
        1,
        11,
    ),
    (
        'status = "Open" by admin',
        'The EQUALS operator does not support the use of the by "admin" predicate.',
        1,
        17,
    ),
    (
        'fixVersion changed 4 by "I can type complete rubbish here"',
        "The CHANGED operator does not support the use of values without predicates. You must prefix the 4 value "  # noqa: E501
        "with a suitable predicate.",
        1,
        20,
    ),
]


@pytest.mark.parametrize(("query", "message", "line", "column"), ERRORS, ids=[e[0] for e in ERRORS])
def test_invalid_queries_fail_with_jiras_message_and_position(
    query: str, message: str, line: int, column: int
) -> None:
    with pytest.raises(JqlError) as info:
        parse(query)
    assert str(info.value) == message
    assert (info.value.line, info.value.column) == (line, column)


@pytest.mark.parametrize("word", sorted(RESERVED_WORDS)[::7])
def test_reserved_words_must_be_quoted(word: str) -> None:
    with pytest.raises(JqlError, match=f"'{word}' is a reserved JQL word"):
        parse(f"summary ~ {word}")
    parse(f'summary ~ "{word}"')


@pytest.mark.parametrize("ch", list("{}*/%+^$#@?;"))
def test_reserved_characters_must_be_quoted(ch: str) -> None:
    with pytest.raises(JqlError, match="is a reserved JQL character"):
        parse(f"summary ~ win{ch}")
    parse(f'summary ~ "win{ch}"')


def t(field: str, op: str, operand: object) -> tuple[str, str, object]:
    return (field, op, operand)


def shape(clause: object) -> object:
    """A compact, position-free view of the AST for table assertions."""
    if isinstance(clause, And):
        return ("and", *[shape(c) for c in clause.clauses])
    if isinstance(clause, Or):
        return ("or", *[shape(c) for c in clause.clauses])
    if isinstance(clause, Not):
        return ("not", shape(clause.clause))
    assert isinstance(clause, Terminal)
    out: tuple[object, ...] = (clause.field.name, clause.op, operand_shape(clause.operand))
    if clause.predicates:
        out += tuple((p.op, operand_shape(p.operand)) for p in clause.predicates)
    return out


def operand_shape(op: object) -> object:
    if op is None:
        return None
    if isinstance(op, Value):
        return op.text
    if isinstance(op, Empty):
        return "EMPTY"
    if isinstance(op, Function):
        return (op.name + "()", *op.args)
    assert isinstance(op, ListOperand)
    return [operand_shape(i) for i in op.items]


VALID = [
    ("project = ABC", ("project", "=", "ABC")),
    ("Project = 'A B'", ("Project", "=", "A B")),
    ('"Story Points" > 5', ("Story Points", ">", "5")),
    ("cf[10010] <= -3", ("cf[10010]", "<=", "-3")),
    ("issue.property[tandem.twin].connection = c1", ("issue.property[tandem.twin].connection", "=", "c1")),
    ("status in (Open, 'In Progress', \"Done\")", ("status", "in", ["Open", "In Progress", "Done"])),
    ("status NOT IN (a, (b, c))", ("status", "not in", ["a", ["b", "c"]])),
    ("assignee is EMPTY", ("assignee", "is", "EMPTY")),
    ("assignee IS NOT null", ("assignee", "is not", "EMPTY")),
    ("summary !~ 'win*'", ("summary", "!~", "win*")),
    ('summary ~ "\\"exact phrase\\""', ("summary", "~", '"exact phrase"')),
    ("summary ~ 'it\\'s'", ("summary", "~", "it's")),
    ("text ~ caf\\u00e9", ("text", "~", "café")),
    ("a != b", ("a", "!=", "b")),
    ("a >= 2024-01-31", ("a", ">=", "2024-01-31")),
    ('created < "2024/01/31 10:00"', ("created", "<", "2024/01/31 10:00")),
    ("updated > -1w", ("updated", ">", "-1w")),
    ("due < startOfWeek(-1w)", ("due", "<", ("startOfWeek()", "-1w"))),
    ("assignee in membersOf('jira-users')", ("assignee", "in", ("membersOf()", "jira-users"))),
    ("assignee = currentUser()", ("assignee", "=", ("currentUser()",))),
    ("status WAS Open", ("status", "was", "Open")),
    (
        "status was not in (a, b) before '2024-01-01'",
        ("status", "was not in", ["a", "b"], ("before", "2024-01-01")),
    ),
    (
        "status changed from Open to Done by bob after -2d before now() on 2024-01-02 during (2024-01-01, now())",  # noqa: E501
        (
            "status",
            "changed",
            None,
            ("from", "Open"),
            ("to", "Done"),
            ("by", "bob"),
            ("after", "-2d"),
            ("before", ("now()",)),
            ("on", "2024-01-02"),
            ("during", ["2024-01-01", ("now()",)]),
        ),
    ),
    ("status CHANGED", ("status", "changed", None)),
    ("a = 1 and b = 2 or c = 3", ("or", ("and", ("a", "=", "1"), ("b", "=", "2")), ("c", "=", "3"))),
    ("a = 1 or b = 2 and c = 3", ("or", ("a", "=", "1"), ("and", ("b", "=", "2"), ("c", "=", "3")))),
    ("a = 1 && b = 2 || c = 3", ("or", ("and", ("a", "=", "1"), ("b", "=", "2")), ("c", "=", "3"))),
    ("a = 1 & b = 2 | c = 3", ("or", ("and", ("a", "=", "1"), ("b", "=", "2")), ("c", "=", "3"))),
    ("(a = 1 or b = 2) and c = 3", ("and", ("or", ("a", "=", "1"), ("b", "=", "2")), ("c", "=", "3"))),
    ("not a = 1 and b = 2", ("and", ("not", ("a", "=", "1")), ("b", "=", "2"))),
    ("! (a = 1 or b = 2)", ("not", ("or", ("a", "=", "1"), ("b", "=", "2")))),
    ("NOT NOT a = 1", ("not", ("not", ("a", "=", "1")))),
]


@pytest.mark.parametrize(("query", "expected"), VALID, ids=[v[0] for v in VALID])
def test_valid_queries_parse_to_the_expected_tree(query: str, expected: object) -> None:
    ast = parse(query)
    assert shape(ast.where) == expected
    assert ast.order_by is None


def test_order_by_only_and_empty_query() -> None:
    assert parse("").where is None and parse("").order_by is None
    assert parse("   \n ").where is None
    ast = parse("ORDER BY priority DESC, key, cf[10] asc, issue.property[p].x")
    assert ast.where is None
    assert ast.order_by is not None
    assert [(k.field.name, k.direction) for k in ast.order_by] == [
        ("priority", "DESC"),
        ("key", None),
        ("cf[10]", "ASC"),
        ("issue.property[p].x", None),
    ]


def test_keywords_are_case_insensitive_and_field_positions_are_one_based() -> None:
    ast = parse("project = A\n  AnD Status In (x) oRdEr By created")
    assert isinstance(ast.where, And)
    second = ast.where.clauses[1]
    assert isinstance(second, Terminal)
    assert second.field == FieldRef("Status", second.field.pos)
    assert (second.field.pos.line, second.field.pos.column) == (2, 7)


def test_quoted_keywords_are_plain_values() -> None:
    ast = parse('project = "AND" and status = "empty"')
    assert shape(ast.where) == ("and", ("project", "=", "AND"), ("status", "=", "empty"))


def test_deep_nesting_is_refused_clearly() -> None:
    with pytest.raises(JqlError, match="nested too deeply"):
        parse("(" * 500 + "a = b" + ")" * 500)
    parse("(" * 50 + "a = b" + ")" * 50)


def test_very_long_queries_are_refused_clearly() -> None:
    with pytest.raises(JqlError, match="too long"):
        parse("a = b or " * 20_000 + "a = b")
