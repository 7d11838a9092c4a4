//! Turning a create request body into a `CreateUserFlow` command, naming every problem at once
//! (docs/reference.md §2), so a client fixes its body in one round trip. The rules for each
//! value are the domain's; this module knows the JSON shape of the body.

use serde_json::{Map, Value};

use super::json::{number_value, Scan};
use crate::domain::{CreateUserFlow, UserFlow, UserFlowId, UserFlowType, UserFlowTypeVersion};

const ODATA_TYPE: &str = "@odata.type";
const ENTITY_TYPE: &str = "microsoft.graph.identityUserFlow";

/// One offending property of a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// A short machine code: `MissingProperty`, `InvalidValue`, `InvalidType`,
    /// `UnknownProperty` or `DuplicateProperty`.
    pub code: &'static str,
    pub message: String,
    /// The JSON name of the property.
    pub target: String,
}

/// Why a body was refused. Both map to `400 BadRequest`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// Not JSON, or not a JSON object.
    #[error("{0}")]
    Malformed(String),
    /// A JSON object with one or more bad properties.
    #[error("{}", summary(.0))]
    Invalid(Vec<Problem>),
}

fn summary(problems: &[Problem]) -> String {
    let messages: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
    messages.join(" ")
}

/// Parses and validates a create body.
pub fn parse_create_body(bytes: &[u8]) -> Result<CreateUserFlow, BodyError> {
    plain_body(bytes).map_or_else(|| parse_any_body(bytes), Ok)
}

/// The common case without a JSON map: an object with exactly `id`, `userFlowType` and
/// `userFlowTypeVersion`, each once, the strings without escapes, and every value valid. Any
/// other body (`None`) is read again by [`parse_any_body`], which names every problem; on the
/// bodies this accepts, that path gives the same flow (a test compares the two).
fn plain_body(bytes: &[u8]) -> Option<CreateUserFlow> {
    let [id, flow_type, version] = plain_fields(bytes)?;
    Some(CreateUserFlow {
        flow: UserFlow {
            id: UserFlowId::parse(std::str::from_utf8(id).ok()?).ok()?,
            user_flow_type: UserFlowType::from_name(flow_type)?,
            user_flow_type_version: UserFlowTypeVersion::parse(number_value(version)?).ok()?,
        },
    })
}

/// The texts of `id` and `userFlowType` (string literals without escapes, between their
/// quotes) and of `userFlowTypeVersion` (a number literal), when `bytes` is one JSON object with
/// those three properties once each and nothing else (`None` for anything else, valid JSON or
/// not). A scan over the bytes: the body every client sends costs no deserializer.
fn plain_fields(bytes: &[u8]) -> Option<[&[u8]; 3]> {
    let mut scan = Scan::new(bytes);
    let mut fields: [Option<&[u8]>; 3] = [None; 3];
    scan.expect(b'{')?;
    loop {
        let slot = match scan.string()? {
            b"id" => 0,
            b"userFlowType" => 1,
            b"userFlowTypeVersion" => 2,
            _ => return None,
        };
        scan.expect(b':')?;
        let value = if slot == 2 {
            scan.number()?
        } else {
            scan.string()?
        };
        if fields[slot].replace(value).is_some() {
            return None;
        }
        scan.skip_whitespace();
        match scan.next()? {
            b',' => {}
            b'}' => break,
            _ => return None,
        }
    }
    scan.skip_whitespace();
    let [Some(id), Some(flow_type), Some(version)] = fields else {
        return None;
    };
    scan.at_end().then_some([id, flow_type, version])
}

/// Any body: read into a JSON map and validated property by property. [`parse_create_body`]
/// answers exactly this on every input, only faster on the common body; public so that the
/// fuzz target and the corpus test can hold the two to that.
pub fn parse_any_body(bytes: &[u8]) -> Result<CreateUserFlow, BodyError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        let text = e.to_string();
        // Valid JSON, but a number no double holds (`1e400`).
        BodyError::Malformed(match text.strip_prefix("number out of range") {
            Some(at) => format!("The request body holds a number too large to read{at}."),
            None => format!("The request body is not valid JSON: {text}."),
        })
    })?;
    let Value::Object(map) = value else {
        return Err(BodyError::Malformed(
            "The request body must be a JSON object describing an identityUserFlow.".to_owned(),
        ));
    };
    // (policy) JSON leaves a repeated name undefined, and a last-wins read would hide a
    // client's bug: a body that names a property twice is refused, naming it.
    if let Ok(FirstRepeatedKey(Some(key))) = serde_json::from_slice(bytes) {
        return Err(BodyError::Invalid(vec![Problem {
            code: "DuplicateProperty",
            message: format!("The property '{key}' is given more than once."),
            target: key,
        }]));
    }
    validate(&map)
}

/// The first top-level name a JSON object gives twice, if any.
struct FirstRepeatedKey(Option<String>);

impl<'de> serde::Deserialize<'de> for FirstRepeatedKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Keys;
        impl<'de> serde::de::Visitor<'de> for Keys {
            type Value = FirstRepeatedKey;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                // Read to the end: serde_json refuses a map left half read.
                let mut seen = std::collections::HashSet::new();
                let mut repeated = None;
                while let Some(key) = map.next_key::<String>()? {
                    map.next_value::<serde::de::IgnoredAny>()?;
                    if !seen.insert(key.clone()) && repeated.is_none() {
                        repeated = Some(key);
                    }
                }
                Ok(FirstRepeatedKey(repeated))
            }
        }
        deserializer.deserialize_map(Keys)
    }
}

fn validate(map: &Map<String, Value>) -> Result<CreateUserFlow, BodyError> {
    let mut problems = Vec::new();

    let id = required(map, "id", &mut problems).and_then(|v| match v {
        Value::String(s) => UserFlowId::parse(s)
            .map_err(|m| problems.push(invalid("InvalidValue", "id", m)))
            .ok(),
        other => {
            problems.push(wrong_type("id", "Edm.String", other));
            None
        }
    });
    let flow_type = required(map, "userFlowType", &mut problems).and_then(|v| match v {
        Value::String(s) => UserFlowType::parse(s)
            .map_err(|m| problems.push(invalid("InvalidValue", "userFlowType", m)))
            .ok(),
        other => {
            problems.push(wrong_type(
                "userFlowType",
                "microsoft.graph.userFlowType",
                other,
            ));
            None
        }
    });
    let version = required(map, "userFlowTypeVersion", &mut problems).and_then(|v| match v {
        Value::Number(n) => n.as_f64().and_then(|f| {
            UserFlowTypeVersion::parse(f)
                .map_err(|m| problems.push(invalid("InvalidValue", "userFlowTypeVersion", m)))
                .ok()
        }),
        other => {
            problems.push(wrong_type("userFlowTypeVersion", "Edm.Single", other));
            None
        }
    });

    for (name, value) in map {
        match name.as_str() {
            "id" | "userFlowType" | "userFlowTypeVersion" => {}
            ODATA_TYPE => {
                let ok = value
                    .as_str()
                    .is_some_and(|t| t.strip_prefix('#').unwrap_or(t) == ENTITY_TYPE);
                if !ok {
                    problems.push(invalid(
                        "InvalidValue",
                        ODATA_TYPE,
                        format!(
                            "Invalid value {value} for '@odata.type': this resource is \
                             '#{ENTITY_TYPE}'."
                        ),
                    ));
                }
            }
            // Other OData control information and instance annotations are ignored, as Graph does.
            other if other.starts_with('@') || other.contains("@odata.") => {}
            other => problems.push(invalid(
                "UnknownProperty",
                other,
                format!(
                    "The property '{other}' does not exist on type '{ENTITY_TYPE}'. Make sure to \
                     only use property names that are defined by the type."
                ),
            )),
        }
    }

    match (id, flow_type, version) {
        (Some(id), Some(user_flow_type), Some(user_flow_type_version)) if problems.is_empty() => {
            Ok(CreateUserFlow {
                flow: UserFlow {
                    id,
                    user_flow_type,
                    user_flow_type_version,
                },
            })
        }
        _ => Err(BodyError::Invalid(problems)),
    }
}

fn required<'a>(
    map: &'a Map<String, Value>,
    name: &str,
    problems: &mut Vec<Problem>,
) -> Option<&'a Value> {
    match map.get(name) {
        None | Some(Value::Null) => {
            problems.push(invalid(
                "MissingProperty",
                name,
                format!("The property '{name}' is required."),
            ));
            None
        }
        Some(v) => Some(v),
    }
}

fn invalid(code: &'static str, target: &str, message: String) -> Problem {
    Problem {
        code,
        message,
        target: target.to_owned(),
    }
}

fn wrong_type(target: &str, expected: &str, got: &Value) -> Problem {
    let literal = match got {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    invalid(
        "InvalidType",
        target,
        format!(
            "Cannot convert the literal '{literal}' to the expected type '{expected}' of \
             property '{target}'."
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(body: &str) -> Vec<Problem> {
        match parse_create_body(body.as_bytes()) {
            Err(BodyError::Invalid(p)) => p,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    fn targets(body: &str) -> Vec<String> {
        problems(body).into_iter().map(|p| p.target).collect()
    }

    #[test]
    fn a_valid_body_becomes_a_prefixed_flow() {
        let cmd =
            parse_create_body(br#"{"id":"Pol1","userFlowType":"signUp","userFlowTypeVersion":3}"#)
                .unwrap();
        assert_eq!(cmd.flow.id.as_str(), "B2C_1_Pol1");
        assert_eq!(cmd.flow.user_flow_type, UserFlowType::SignUp);
        assert!((cmd.flow.user_flow_type_version.value() - 3.0).abs() < f32::EPSILON);
    }

    #[test]
    fn odata_type_is_optional_but_checked() {
        let ok = r##"{"@odata.type":"#microsoft.graph.identityUserFlow","id":"a","userFlowType":"signIn","userFlowTypeVersion":1}"##;
        assert!(parse_create_body(ok.as_bytes()).is_ok());
        let bad = r##"{"@odata.type":"#microsoft.graph.user","id":"a","userFlowType":"signIn","userFlowTypeVersion":1}"##;
        assert_eq!(targets(bad), vec!["@odata.type"]);
        let other_annotation =
            r#"{"@odata.etag":"x","id":"a","userFlowType":"signIn","userFlowTypeVersion":1}"#;
        assert!(parse_create_body(other_annotation.as_bytes()).is_ok());
    }

    #[test]
    fn the_seed_placeholder_body_names_every_problem() {
        let p = problems(r#"{"userFlowType":"String","userFlowTypeVersion":"Single"}"#);
        let codes: Vec<(&str, &str)> = p.iter().map(|p| (p.target.as_str(), p.code)).collect();
        assert_eq!(
            codes,
            vec![
                ("id", "MissingProperty"),
                ("userFlowType", "InvalidValue"),
                ("userFlowTypeVersion", "InvalidType")
            ]
        );
        let all = BodyError::Invalid(p).to_string();
        assert!(all.contains("'id'") && all.contains("'String'") && all.contains("'Single'"));
    }

    #[test]
    fn unknown_properties_are_refused_by_name() {
        let p = problems(
            r#"{"id":"a","userFlowType":"signIn","userFlowTypeVersion":1,"isLanguageCustomizationEnabled":true}"#,
        );
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].target, "isLanguageCustomizationEnabled");
        assert!(p[0]
            .message
            .contains("does not exist on type 'microsoft.graph.identityUserFlow'"));
    }

    #[test]
    fn wrong_types_and_nulls_are_refused() {
        assert_eq!(
            targets(r#"{"id":5,"userFlowType":null,"userFlowTypeVersion":"1"}"#),
            vec!["id", "userFlowType", "userFlowTypeVersion"]
        );
        assert_eq!(
            targets(r#"{"id":"a","userFlowType":"signIn","userFlowTypeVersion":0}"#),
            vec!["userFlowTypeVersion"]
        );
        assert_eq!(
            targets(r#"{"id":"a","userFlowType":"unknownFutureValue","userFlowTypeVersion":1}"#),
            vec!["userFlowType"]
        );
    }

    #[test]
    fn the_plain_path_answers_exactly_as_the_general_one() {
        let bodies = [
            r#"{"id":"Pol1","userFlowType":"signUp","userFlowTypeVersion":3}"#,
            r#" { "userFlowTypeVersion" : 1.5 , "id" : "B2C_1_x-y" , "userFlowType" : "signIn" } "#,
            r#"{"id":"b2c_1_lower","userFlowType":"resourceOwner","userFlowTypeVersion":1e0}"#,
            r#"{"id":"a","userFlowType":"signUp","userFlowTypeVersion":3.4028236e38}"#,
            r#"{"id":"a","userFlowType":"signUp","userFlowTypeVersion":1e-50}"#,
            r#"{"id":"a","userFlowType":"signUp","userFlowTypeVersion":-1}"#,
            r#"{"id":"a","userFlowType":"signUp","userFlowTypeVersion":0}"#,
            r#"{"id":"a","userFlowType":"signUp","userFlowTypeVersion":18446744073709551616}"#,
            r#"{"id":"a","userFlowType":"signUp","userFlowTypeVersion":"1"}"#,
            r#"{"id":"a","userFlowType":"signUp","userFlowTypeVersion":null}"#,
            r#"{"id":"a","userFlowType":"signUp"}"#,
            r#"{"id":"a","id":"b","userFlowType":"signUp","userFlowTypeVersion":1}"#,
            r#"{"id":"a","userFlowType":"signUp","userFlowTypeVersion":1,"userFlowType":"x"}"#,
            r#"{"id":"\u0061","userFlowType":"signUp","userFlowTypeVersion":1}"#,
            r#"{"id":"a","userFlowType":"sign\u0055p","userFlowTypeVersion":1}"#,
            r#"{"\u0069d":"a","userFlowType":"signUp","userFlowTypeVersion":1}"#,
            r#"{"id":"a b","userFlowType":"signUp","userFlowTypeVersion":1}"#,
            r#"{"id":"","userFlowType":"signUp","userFlowTypeVersion":1}"#,
            r#"{"id":["a"],"userFlowType":{"x":1},"userFlowTypeVersion":[1]}"#,
            r#"{"id":"a","userFlowType":"SignUp","userFlowTypeVersion":1}"#,
            r##"{"@odata.type":"#microsoft.graph.identityUserFlow","id":"a","userFlowType":"signIn","userFlowTypeVersion":1}"##,
            r#"{"id":"a","userFlowType":"signUp","userFlowTypeVersion":1,"extra":true}"#,
            r#"{"id":"a","userFlowType":"signUp","userFlowTypeVersion":1} x"#,
            r#"{"id":"a","userFlowType":"signUp","userFlowTypeVersion":1"#,
            r#"{"id":"a","userFlowType":"signUp","userFlowTypeVersion":01}"#,
            r#"{"id":"a","userFlowType":"signUp","userFlowTypeVersion":1.}"#,
            r#"{"id":"a","userFlowType":"signUp","userFlowTypeVersion":.5}"#,
            r#"{"id":"a","userFlowType":"signUp","userFlowTypeVersion":1e}"#,
            r#"{"id":"a","userFlowType":"signUp","userFlowTypeVersion":-}"#,
            r#"{"id":"a","userFlowType":"signUp","userFlowTypeVersion":2E+1}"#,
            r#"{"id":"a","userFlowType":"signUp","userFlowTypeVersion":1,}"#,
            r#"{"id":"a","userFlowType":"signUp",,"userFlowTypeVersion":1}"#,
            r#"{"id":"a""userFlowType":"signUp","userFlowTypeVersion":1}"#,
            r#"{"id":"a","userFlowType":"signUp","userFlowTypeVersion":true}"#,
            "{\"id\":\"a\u{1}\",\"userFlowType\":\"signUp\",\"userFlowTypeVersion\":1}",
            "{\"id\":\"\u{e9}\",\"userFlowType\":\"signUp\",\"userFlowTypeVersion\":1}",
            "\t{\r\n\"id\"\n:\t\"a\",\"userFlowType\":\"signUp\",\"userFlowTypeVersion\":1}\n",
            "{\"id\":\"a\",\"userFlowType\":\"signUp\",\"userFlowTypeVersion\":1}\u{b}",
            r#"{"id":"a","userFlowType":"signUp","userFlowTypeVersion":1}}"#,
            "{}",
            "{",
            r#"["id","a"]"#,
            r#""id""#,
            "",
        ];
        for body in bodies {
            assert_eq!(
                parse_create_body(body.as_bytes()),
                parse_any_body(body.as_bytes()),
                "{body}"
            );
        }
        assert!(plain_body(bodies[0].as_bytes()).is_some());
        assert!(plain_body(bodies[1].as_bytes()).is_some());
        assert!(plain_body(bodies[13].as_bytes()).is_none());
        let spaced =
            "\t{\r\n\"id\"\n:\t\"a\",\"userFlowType\":\"signUp\",\"userFlowTypeVersion\":1}\n";
        assert!(plain_body(spaced.as_bytes()).is_some());
        let exponent = r#"{"id":"a","userFlowType":"signUp","userFlowTypeVersion":2E+1}"#;
        assert!(plain_body(exponent.as_bytes()).is_some());
    }

    #[test]
    fn malformed_json_and_non_objects_are_malformed() {
        assert!(matches!(
            parse_create_body(b"{"),
            Err(BodyError::Malformed(_))
        ));
        assert!(matches!(
            parse_create_body(b"[]"),
            Err(BodyError::Malformed(_))
        ));
        assert!(matches!(
            parse_create_body(b""),
            Err(BodyError::Malformed(_))
        ));
        // Valid JSON whose number no double holds is not called invalid JSON.
        let huge = br#"{"id":"a","userFlowType":"signIn","userFlowTypeVersion":1e400}"#;
        match parse_create_body(huge) {
            Err(BodyError::Malformed(m)) => assert!(
                m.starts_with("The request body holds a number too large to read at line 1"),
                "{m}"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_property_given_twice_is_refused_naming_it() {
        for body in [
            r#"{"id":"a","id":"b","userFlowType":"signIn","userFlowTypeVersion":1}"#,
            r#"{"id":"a","userFlowType":"signIn","userFlowTypeVersion":1,"id":"a"}"#,
            r#"{ "id" : "a" , "userFlowType":"signIn","userFlowTypeVersion":1, "i\u0064":"b"}"#,
        ] {
            assert_eq!(targets(body), ["id"], "{body}");
        }
        assert_eq!(
            targets(
                r#"{"id":"a","userFlowType":"signIn","userFlowType":"signUp","userFlowTypeVersion":1}"#
            ),
            ["userFlowType"]
        );
    }
}
