//! A `$filter` as a typed expression over a flow's three properties, and its evaluation. The
//! wire syntax is parsed elsewhere (`http::filter`); here are only the meanings: `id` compares
//! ignoring ASCII case, as ids do, `userFlowType` as the enum, `userFlowTypeVersion` as an
//! Edm.Single.

use std::cmp::Ordering;

use super::flow::{UserFlow, UserFlowType};

/// Equal or not equal: the comparisons every property takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Equality {
    Eq,
    Ne,
}

/// The comparisons of an ordered property.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

/// A filter expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// Every one matches. N-ary, so a long chain of `and` is one node, not a deep tree.
    And(Vec<Filter>),
    /// Any one matches.
    Or(Vec<Filter>),
    Not(Box<Filter>),
    /// `id eq 'x'`: the value lower-cased.
    Id(Equality, String),
    /// `startswith(id,'x')`: the prefix lower-cased.
    IdStartsWith(String),
    /// `id in ('a','b')`: each value lower-cased.
    IdIn(Vec<String>),
    Type(Equality, UserFlowType),
    /// The literal already rounded to Edm.Single.
    Version(Comparison, f32),
}

impl Filter {
    /// The clauses that must all hold: the members of a top-level `and`, or the filter itself.
    /// The listing picks an index from these.
    #[must_use]
    pub fn conjuncts(&self) -> &[Filter] {
        match self {
            Self::And(all) => all,
            other => std::slice::from_ref(other),
        }
    }

    /// Whether `flow` matches.
    #[must_use]
    pub fn matches(&self, flow: &UserFlow) -> bool {
        match self {
            Self::And(all) => all.iter().all(|f| f.matches(flow)),
            Self::Or(any) => any.iter().any(|f| f.matches(flow)),
            Self::Not(a) => !a.matches(flow),
            Self::Id(op, value) => {
                let same = flow.id.as_str().eq_ignore_ascii_case(value);
                (*op == Equality::Eq) == same
            }
            Self::IdStartsWith(prefix) => starts_with_ignoring_case(flow.id.as_str(), prefix),
            Self::IdIn(values) => values
                .iter()
                .any(|v| flow.id.as_str().eq_ignore_ascii_case(v)),
            Self::Type(op, value) => (*op == Equality::Eq) == (flow.user_flow_type == *value),
            Self::Version(op, value) => {
                // IEEE comparison: exact, as OData compares Edm.Single values.
                let order = flow.user_flow_type_version.value().partial_cmp(value);
                match op {
                    Comparison::Eq => order.is_some_and(Ordering::is_eq),
                    Comparison::Ne => !order.is_some_and(Ordering::is_eq),
                    Comparison::Gt => order.is_some_and(Ordering::is_gt),
                    Comparison::Ge => order.is_some_and(Ordering::is_ge),
                    Comparison::Lt => order.is_some_and(Ordering::is_lt),
                    Comparison::Le => order.is_some_and(Ordering::is_le),
                }
            }
        }
    }
}

/// Whether `id` starts with `prefix` (lower-cased) in any ASCII case. Compared from the
/// prefix's end: ids share their leading `B2C_1_`, so a flow that fails mostly fails on the
/// first byte compared.
pub(super) fn starts_with_ignoring_case(id: &str, prefix: &str) -> bool {
    id.as_bytes().get(..prefix.len()).is_some_and(|head| {
        head.iter()
            .rev()
            .zip(prefix.as_bytes().iter().rev())
            .all(|(a, b)| a.to_ascii_lowercase() == *b)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(id: &str, kind: UserFlowType, version: f64) -> UserFlow {
        UserFlow::sample_of(id, kind, version)
    }

    #[test]
    fn ids_compare_ignoring_case_and_the_rest_by_value() {
        let f = flow("B2C_1_SignIn", UserFlowType::SignIn, 3.0);
        assert!(Filter::Id(Equality::Eq, "b2c_1_signin".into()).matches(&f));
        assert!(!Filter::Id(Equality::Ne, "b2c_1_signin".into()).matches(&f));
        assert!(Filter::IdStartsWith("b2c_1_sign".into()).matches(&f));
        assert!(!Filter::IdStartsWith("b2c_1_signinx".into()).matches(&f));
        assert!(Filter::IdIn(vec!["x".into(), "b2c_1_signin".into()]).matches(&f));
        assert!(Filter::Type(Equality::Eq, UserFlowType::SignIn).matches(&f));
        assert!(Filter::Type(Equality::Ne, UserFlowType::SignUp).matches(&f));
        assert!(Filter::Version(Comparison::Ge, 3.0).matches(&f));
        assert!(!Filter::Version(Comparison::Gt, 3.0).matches(&f));
        let both = Filter::And(vec![
            Filter::Version(Comparison::Lt, 4.0),
            Filter::Not(Box::new(Filter::Type(Equality::Eq, UserFlowType::SignUp))),
        ]);
        assert!(both.matches(&f));
        let either = Filter::Or(vec![
            Filter::Version(Comparison::Lt, 1.0),
            Filter::IdIn(vec![]),
        ]);
        assert!(!either.matches(&f));
    }
}
