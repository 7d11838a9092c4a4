//! The text of `$filter`, `$orderby` and `$select`, parsed with `winnow` into the domain's typed
//! [`Filter`] and [`OrderKey`]s. Two steps: a syntax tree of OData's grammar (operators,
//! function names and `asc`/`desc` ignoring case; `not` binds tighter than `and`, `and` than
//! `or`), then typing against the three properties of an identityUserFlow, where each error
//! says what is wrong.

use winnow::ascii::{float, multispace0, multispace1, Caseless};
use winnow::combinator::{
    alt, cut_err, delimited, eof, not, opt, preceded, repeat, separated, terminated,
};
use winnow::error::{ContextError, ErrMode, ModalResult};
use winnow::token::{none_of, one_of, take_while};
use winnow::Parser;

use crate::domain::{Comparison, Equality, Filter, OrderKey, Property, UserFlowType};

/// (policy) The deepest nesting of parentheses a filter may have.
pub const MAX_DEPTH: usize = 32;

const ENTITY: &str = "microsoft.graph.identityUserFlow";
const ENUM_TYPE: &str = "microsoft.graph.userFlowType";

fn op_name(op: Comparison) -> &'static str {
    match op {
        Comparison::Eq => "eq",
        Comparison::Ne => "ne",
        Comparison::Gt => "gt",
        Comparison::Ge => "ge",
        Comparison::Lt => "lt",
        Comparison::Le => "le",
    }
}

/// The operator with its operands swapped (`'x' lt id` is `id gt 'x'`).
fn flipped(op: Comparison) -> Comparison {
    match op {
        Comparison::Gt => Comparison::Lt,
        Comparison::Ge => Comparison::Le,
        Comparison::Lt => Comparison::Gt,
        Comparison::Le => Comparison::Ge,
        other => other,
    }
}

/// A literal as written.
#[derive(Debug, Clone, PartialEq)]
enum Literal {
    String(String),
    Number(f64),
    /// `microsoft.graph.userFlowType'signIn'`: the type name and the member.
    Enum(String, String),
    Null,
    Bool(bool),
}

/// An operand: a property name or a literal.
#[derive(Debug, Clone, PartialEq)]
enum Operand<'a> {
    Property(&'a str),
    Literal(Literal),
}

/// The syntax tree.
#[derive(Debug, Clone, PartialEq)]
enum Syntax<'a> {
    Or(Vec<Syntax<'a>>),
    And(Vec<Syntax<'a>>),
    Not(Box<Syntax<'a>>),
    Compare(Operand<'a>, Comparison, Operand<'a>),
    In(Operand<'a>, Vec<Literal>),
    Call(&'a str, Vec<Operand<'a>>),
}

type Input<'a> = &'a str;

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.'
}

/// A keyword, ignoring case, not followed by more of a name.
fn keyword<'a>(word: &'static str) -> impl Parser<Input<'a>, &'a str, ErrMode<ContextError>> {
    terminated(Caseless(word), not(one_of(is_ident_char)))
}

fn ident<'a>(input: &mut Input<'a>) -> ModalResult<&'a str> {
    (
        one_of(|c: char| c.is_ascii_alphabetic() || c == '_'),
        take_while(0.., is_ident_char),
    )
        .take()
        .parse_next(input)
}

/// `'…'`, a quote doubled inside.
fn string(input: &mut Input<'_>) -> ModalResult<String> {
    preceded(
        '\'',
        cut_err(terminated(
            repeat(0.., alt(("''".value('\''), none_of('\'')))),
            '\'',
        )),
    )
    .parse_next(input)
}

fn literal(input: &mut Input<'_>) -> ModalResult<Literal> {
    alt((
        string.map(Literal::String),
        (ident, string).map(|(kind, value): (&str, String)| Literal::Enum(kind.to_owned(), value)),
        keyword("null").value(Literal::Null),
        keyword("true").value(Literal::Bool(true)),
        keyword("false").value(Literal::Bool(false)),
        float.map(Literal::Number),
    ))
    .parse_next(input)
}

fn operand<'a>(input: &mut Input<'a>) -> ModalResult<Operand<'a>> {
    alt((literal.map(Operand::Literal), ident.map(Operand::Property))).parse_next(input)
}

fn op(input: &mut Input<'_>) -> ModalResult<Comparison> {
    alt((
        keyword("eq").value(Comparison::Eq),
        keyword("ne").value(Comparison::Ne),
        keyword("gt").value(Comparison::Gt),
        keyword("ge").value(Comparison::Ge),
        keyword("lt").value(Comparison::Lt),
        keyword("le").value(Comparison::Le),
    ))
    .parse_next(input)
}

fn list<'a, T>(
    item: impl Parser<Input<'a>, T, ErrMode<ContextError>>,
) -> impl Parser<Input<'a>, Vec<T>, ErrMode<ContextError>> {
    delimited(
        ('(', multispace0),
        separated(1.., item, (multispace0, ',', multispace0)),
        (multispace0, cut_err(')')),
    )
}

/// `name(arg, …)`
fn call<'a>(input: &mut Input<'a>) -> ModalResult<Syntax<'a>> {
    (terminated(ident, multispace0), list(operand))
        .map(|(name, args)| Syntax::Call(name, args))
        .parse_next(input)
}

/// A comparison, an `in`, a call, a `not` or a parenthesised expression.
fn primary<'a>(input: &mut Input<'a>) -> ModalResult<Syntax<'a>> {
    preceded(
        multispace0,
        alt((
            delimited(('(', multispace0), or, (multispace0, cut_err(')'))),
            preceded(
                (keyword("not"), multispace0),
                cut_err(alt((
                    delimited(('(', multispace0), or, (multispace0, cut_err(')'))),
                    call,
                ))),
            )
            .map(|inner| Syntax::Not(Box::new(inner))),
            call,
            (
                terminated(operand, multispace1),
                keyword("in"),
                preceded(multispace0, cut_err(list(literal))),
            )
                .map(|(left, _, values)| Syntax::In(left, values)),
            (
                terminated(operand, multispace0),
                op,
                preceded(multispace0, cut_err(operand)),
            )
                .map(|(left, op, right)| Syntax::Compare(left, op, right)),
        )),
    )
    .parse_next(input)
}

fn and<'a>(input: &mut Input<'a>) -> ModalResult<Syntax<'a>> {
    separated(1.., primary, (multispace1, keyword("and")))
        .map(|mut all: Vec<Syntax<'a>>| {
            if all.len() == 1 {
                all.remove(0)
            } else {
                Syntax::And(all)
            }
        })
        .parse_next(input)
}

fn or<'a>(input: &mut Input<'a>) -> ModalResult<Syntax<'a>> {
    separated(1.., and, (multispace1, keyword("or")))
        .map(|mut any: Vec<Syntax<'a>>| {
            if any.len() == 1 {
                any.remove(0)
            } else {
                Syntax::Or(any)
            }
        })
        .parse_next(input)
}

fn invalid(detail: impl std::fmt::Display) -> String {
    format!("Invalid filter clause: {detail}")
}

/// Checks what a syntax error would only point at: quotes closed, parentheses balanced and not
/// nested deeper than [`MAX_DEPTH`] (so that parsing and evaluation recurse a bounded depth).
fn check_shape(text: &str) -> Result<(), String> {
    let mut depth = 0usize;
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '\'' => quoted = !quoted,
            '(' if !quoted => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(invalid(format!(
                        "parentheses are nested deeper than {MAX_DEPTH} levels."
                    )));
                }
            }
            ')' if !quoted => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| invalid("unbalanced parenthesis: a ')' has no '('."))?;
            }
            _ => {}
        }
    }
    if quoted {
        return Err(invalid(
            "a string literal is not closed: end it with a quote (').",
        ));
    }
    if depth > 0 {
        return Err(invalid("unbalanced parenthesis: a '(' is not closed."));
    }
    Ok(())
}

/// Parses a `$filter` value.
pub fn parse_filter(text: &str) -> Result<Filter, String> {
    check_shape(text)?;
    let syntax = terminated(or, (multispace0, eof))
        .parse(text)
        .map_err(|e| {
            let at = e.offset();
            let rest: String = text[at..].chars().take(20).collect();
            invalid(format!(
                "syntax error at position {at} ('{rest}') in '{text}'."
            ))
        })?;
    typed(&syntax)
}

fn property(name: &str) -> Result<Property, String> {
    match name {
        "id" => Ok(Property::Id),
        "userFlowType" => Ok(Property::Type),
        "userFlowTypeVersion" => Ok(Property::Version),
        other => Err(format!(
            "Could not find a property named '{other}' on type '{ENTITY}'."
        )),
    }
}

fn describe(literal: &Literal) -> String {
    match literal {
        Literal::String(s) => format!("'{s}'"),
        Literal::Number(n) => n.to_string(),
        Literal::Enum(kind, value) => format!("{kind}'{value}'"),
        Literal::Null => "null".to_owned(),
        Literal::Bool(b) => b.to_string(),
    }
}

fn id_value(literal: &Literal) -> Result<String, String> {
    match literal {
        Literal::String(s) => Ok(s.to_ascii_lowercase()),
        other => Err(invalid(format!(
            "'id' is a string: compare it with a quoted string, not {}.",
            describe(other)
        ))),
    }
}

fn kind_value(literal: &Literal) -> Result<UserFlowType, String> {
    let member = match literal {
        Literal::String(s) => s,
        Literal::Enum(kind, value) if kind == ENUM_TYPE => value,
        other => {
            return Err(invalid(format!(
                "'userFlowType' is an enum: compare it with a quoted member such as 'signIn', \
                 not {}.",
                describe(other)
            )))
        }
    };
    UserFlowType::from_name(member.as_bytes()).ok_or_else(|| {
        let names: Vec<&str> = UserFlowType::ALL.iter().map(|t| t.as_str()).collect();
        invalid(format!(
            "'{member}' is not a member of {ENUM_TYPE} (members: {}).",
            names.join(", ")
        ))
    })
}

fn version_value(literal: &Literal) -> Result<f32, String> {
    match literal {
        // Rounded to Edm.Single, as the stored value was.
        Literal::Number(n) => Ok(*n as f32),
        other => Err(invalid(format!(
            "'userFlowTypeVersion' is a number: compare it with a numeric literal, not {}.",
            describe(other)
        ))),
    }
}

fn equality(op: Comparison, property: &str) -> Result<Equality, String> {
    match op {
        Comparison::Eq => Ok(Equality::Eq),
        Comparison::Ne => Ok(Equality::Ne),
        other => Err(invalid(format!(
            "the operator '{}' does not apply to '{property}': it takes eq and ne{}.",
            op_name(other),
            if property == "id" {
                ", startswith and in"
            } else {
                " and in"
            }
        ))),
    }
}

fn typed(syntax: &Syntax<'_>) -> Result<Filter, String> {
    match syntax {
        Syntax::Or(any) => Ok(Filter::Or(any.iter().map(typed).collect::<Result<_, _>>()?)),
        Syntax::And(all) => Ok(Filter::And(
            all.iter().map(typed).collect::<Result<_, _>>()?,
        )),
        Syntax::Not(inner) => Ok(Filter::Not(Box::new(typed(inner)?))),
        Syntax::Compare(left, op, right) => {
            let (name, op, literal) =
                match (left, right) {
                    (Operand::Property(name), Operand::Literal(literal)) => (*name, *op, literal),
                    (Operand::Literal(literal), Operand::Property(name)) => {
                        (*name, flipped(*op), literal)
                    }
                    _ => return Err(invalid(
                        "a comparison takes one property and one literal, such as id eq 'B2C_1_x'.",
                    )),
                };
            match property(name).map_err(invalid)? {
                Property::Id => Ok(Filter::Id(equality(op, name)?, id_value(literal)?)),
                Property::Type => Ok(Filter::Type(equality(op, name)?, kind_value(literal)?)),
                Property::Version => Ok(Filter::Version(op, version_value(literal)?)),
            }
        }
        Syntax::In(left, values) => {
            let Operand::Property(name) = left else {
                return Err(invalid(
                    "'in' takes a property on its left, such as id in ('a','b').",
                ));
            };
            match property(name).map_err(invalid)? {
                Property::Id => Ok(Filter::IdIn(
                    values.iter().map(id_value).collect::<Result<_, _>>()?,
                )),
                Property::Type => Ok(Filter::Or(
                    values
                        .iter()
                        .map(|v| Ok(Filter::Type(Equality::Eq, kind_value(v)?)))
                        .collect::<Result<_, String>>()?,
                )),
                Property::Version => Ok(Filter::Or(
                    values
                        .iter()
                        .map(|v| Ok(Filter::Version(Comparison::Eq, version_value(v)?)))
                        .collect::<Result<_, String>>()?,
                )),
            }
        }
        Syntax::Call(name, args) => {
            if !name.eq_ignore_ascii_case("startswith") {
                return Err(invalid(format!(
                    "the function '{name}' is not supported: only startswith(id,'…') is."
                )));
            }
            match args.as_slice() {
                [Operand::Property(name), Operand::Literal(Literal::String(prefix))]
                    if property(name).map_err(invalid)? == Property::Id =>
                {
                    Ok(Filter::IdStartsWith(prefix.to_ascii_lowercase()))
                }
                _ => Err(invalid(
                    "startswith takes the property 'id' and a quoted string, such as \
                     startswith(id,'B2C_1_Sign').",
                )),
            }
        }
    }
}

/// Parses a `$orderby` value: properties, each optionally `asc` or `desc`, comma-separated.
pub fn parse_orderby(text: &str) -> Result<Vec<OrderKey>, String> {
    let item = (
        ident,
        opt(preceded(
            multispace1,
            alt((keyword("asc").value(false), keyword("desc").value(true))),
        )),
    );
    let items: Vec<(&str, Option<bool>)> = delimited(
        multispace0,
        separated(1.., item, (multispace0, ',', multispace0)),
        (multispace0, eof),
    )
    .parse(text)
    .map_err(|e| {
        format!(
            "expected properties, each optionally followed by asc or desc, comma-separated; \
             syntax error at position {}",
            e.offset()
        )
    })?;
    let mut keys: Vec<OrderKey> = Vec::with_capacity(items.len());
    for (name, descending) in items {
        let property = property(name)?;
        if keys.iter().any(|k| k.property == property) {
            return Err(format!("the property '{name}' appears more than once"));
        }
        keys.push(OrderKey {
            property,
            descending: descending.unwrap_or(false),
        });
    }
    Ok(keys)
}

/// Parses a `$select` value: property names, comma-separated, or `*`. `None` selects all.
pub fn parse_select(text: &str) -> Result<Option<Vec<Property>>, String> {
    let mut selected = Vec::new();
    for name in text.split(',').map(str::trim) {
        if name == "*" {
            return Ok(None);
        }
        if name.is_empty() {
            return Err("expected property names, comma-separated".to_owned());
        }
        let property = property(name)?;
        if !selected.contains(&property) {
            selected.push(property);
        }
    }
    Ok(Some(selected))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Filter {
        parse_filter(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn err(text: &str) -> String {
        let e = parse_filter(text).expect_err(text);
        assert!(e.starts_with("Invalid filter clause: "), "{text}: {e}");
        e
    }

    #[test]
    fn every_comparison_on_every_property() {
        assert_eq!(
            ok("id eq 'B2C_1_X'"),
            Filter::Id(Equality::Eq, "b2c_1_x".into())
        );
        assert_eq!(ok("id ne 'a'"), Filter::Id(Equality::Ne, "a".into()));
        assert_eq!(
            ok("userFlowType eq 'signIn'"),
            Filter::Type(Equality::Eq, UserFlowType::SignIn)
        );
        assert_eq!(
            ok("userFlowType ne microsoft.graph.userFlowType'signUp'"),
            Filter::Type(Equality::Ne, UserFlowType::SignUp)
        );
        for (op, comparison) in [
            ("eq", Comparison::Eq),
            ("ne", Comparison::Ne),
            ("gt", Comparison::Gt),
            ("ge", Comparison::Ge),
            ("lt", Comparison::Lt),
            ("le", Comparison::Le),
        ] {
            assert_eq!(
                ok(&format!("userFlowTypeVersion {op} 3")),
                Filter::Version(comparison, 3.0)
            );
        }
        assert_eq!(
            ok("startswith(id,'B2C_1_Sign')"),
            Filter::IdStartsWith("b2c_1_sign".into())
        );
        assert_eq!(
            ok("id in ('A', 'b')"),
            Filter::IdIn(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            ok("userFlowType in ('signIn','signUp')"),
            Filter::Or(vec![
                Filter::Type(Equality::Eq, UserFlowType::SignIn),
                Filter::Type(Equality::Eq, UserFlowType::SignUp),
            ])
        );
    }

    #[test]
    fn operators_and_functions_ignore_case_and_literals_may_lead() {
        assert_eq!(ok("id EQ 'a'"), ok("id eq 'a'"));
        assert_eq!(ok("StartsWith(id, 'a')"), ok("startswith(id,'a')"));
        assert_eq!(
            ok("3 lt userFlowTypeVersion"),
            ok("userFlowTypeVersion gt 3")
        );
        assert_eq!(
            ok("NOT (id eq 'a')"),
            Filter::Not(Box::new(ok("id eq 'a'")))
        );
        assert_eq!(
            ok("not startswith(id,'a')"),
            Filter::Not(Box::new(ok("startswith(id,'a')")))
        );
    }

    #[test]
    fn not_binds_tighter_than_and_and_and_than_or() {
        let a = || ok("id eq 'a'");
        let b = || ok("id eq 'b'");
        let c = || ok("id eq 'c'");
        assert_eq!(
            ok("id eq 'a' or id eq 'b' and id eq 'c'"),
            Filter::Or(vec![a(), Filter::And(vec![b(), c()])])
        );
        assert_eq!(
            ok("(id eq 'a' or id eq 'b') and id eq 'c'"),
            Filter::And(vec![Filter::Or(vec![a(), b()]), c()])
        );
        assert_eq!(
            ok("not (id eq 'a') and id eq 'b'"),
            Filter::And(vec![Filter::Not(Box::new(a())), b()])
        );
        assert_eq!(
            ok("id eq 'a' and id eq 'b' and id eq 'c'"),
            Filter::And(vec![a(), b(), c()])
        );
    }

    #[test]
    fn quotes_are_doubled_and_numbers_are_rounded_to_single() {
        assert_eq!(
            ok("id eq 'O''Brien'"),
            Filter::Id(Equality::Eq, "o'brien".into())
        );
        assert_eq!(ok("id eq ''"), Filter::Id(Equality::Eq, String::new()));
        assert_eq!(
            ok("userFlowTypeVersion eq 1.1"),
            Filter::Version(Comparison::Eq, 1.1_f32)
        );
        assert_eq!(
            ok("userFlowTypeVersion ge 1e0"),
            Filter::Version(Comparison::Ge, 1.0)
        );
    }

    #[test]
    fn each_error_says_what_is_wrong() {
        for (text, needle) in [
            ("name eq 'a'", "property named 'name'"),
            ("Id eq 'a'", "property named 'Id'"),
            ("id eq 3", "'id' is a string"),
            ("userFlowType eq 'signin'", "not a member"),
            ("userFlowType eq 3", "is an enum"),
            ("userFlowTypeVersion eq '3'", "is a number"),
            ("id gt 'a'", "'gt' does not apply to 'id'"),
            ("(id eq 'a'", "unbalanced parenthesis"),
            ("id eq 'a')", "unbalanced parenthesis"),
            ("id eq 'a", "not closed"),
            ("contains(id,'a')", "function 'contains'"),
            ("startswith(userFlowType,'a')", "startswith takes"),
            ("startswith(nope,'a')", "property named 'nope'"),
            ("id eq id", "one property and one literal"),
            ("id eq", "syntax error"),
            ("id eq 'a' and", "syntax error"),
            ("id", "syntax error"),
            ("", "syntax error"),
            ("not id eq 'a'", "syntax error"),
            ("id in ()", "syntax error"),
            ("id eq 'a' xor id eq 'b'", "syntax error"),
        ] {
            let message = err(text);
            assert!(message.contains(needle), "{text}: {message}");
        }
        let deep = format!("{}id eq 'a'{}", "(".repeat(40), ")".repeat(40));
        assert!(err(&deep).contains("nested deeper"));
        let fine = format!("{}id eq 'a'{}", "(".repeat(30), ")".repeat(30));
        assert_eq!(ok(&fine), ok("id eq 'a'"));
    }

    #[test]
    fn orderby_and_select() {
        let key = |property, descending| OrderKey {
            property,
            descending,
        };
        assert_eq!(parse_orderby("id").unwrap(), [key(Property::Id, false)]);
        assert_eq!(
            parse_orderby("userFlowType DESC, userFlowTypeVersion asc,id").unwrap(),
            [
                key(Property::Type, true),
                key(Property::Version, false),
                key(Property::Id, false)
            ]
        );
        assert!(parse_orderby("id,id")
            .unwrap_err()
            .contains("more than once"));
        assert!(parse_orderby("name").unwrap_err().contains("'name'"));
        assert!(parse_orderby("id sideways").is_err());
        assert!(parse_orderby("id,").is_err());
        assert_eq!(
            parse_select("userFlowType, id").unwrap(),
            Some(vec![Property::Type, Property::Id])
        );
        assert_eq!(parse_select("*").unwrap(), None);
        assert!(parse_select("id,,userFlowType").is_err());
        assert!(parse_select("displayName")
            .unwrap_err()
            .contains("'displayName'"));
    }
}
