//! Graph paths under `/beta`: which resource a URL names. Segments compare ignoring ASCII case,
//! as Graph does; ids are percent-decoded; Graph's key syntax `userFlows('id')` is accepted.

use percent_encoding::percent_decode_str;

use super::error::ApiError;
use super::response::COLLECTION_PATH;

/// The resource a path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `/beta/identity/userFlows`
    Collection,
    /// `/beta/identity/userFlows/$count`
    Count,
    /// `/beta/identity/userFlows/$ref`: not a real path (an early docs draft had it).
    Ref,
    /// `/beta/identity/userFlows/{id}` or `/beta/identity/userFlows('{id}')`
    Item(String),
}

/// Parses a raw (still percent-encoded) request path.
pub fn parse(raw_path: &str) -> Result<Target, ApiError> {
    // The path of every create and list, as SDKs spell it.
    if raw_path == COLLECTION_PATH {
        return Ok(Target::Collection);
    }
    // Each segment decoded lazily; borrowed from the path unless it has escapes.
    let mut rest = raw_path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode_str(s).decode_utf8_lossy());
    match rest.next().as_deref() {
        Some(version) if version.eq_ignore_ascii_case("beta") => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Invalid version: {other}. This emulator serves Microsoft Graph beta under /beta."
            )))
        }
        None => {
            return Err(ApiError::bad_request(
                "No version in the path. This emulator serves Microsoft Graph beta under /beta.",
            ))
        }
    }
    match rest.next().as_deref() {
        Some(s) if s.eq_ignore_ascii_case("identity") => {}
        Some(s) => return Err(not_found(s)),
        None => return Err(only_user_flows()),
    }
    let target = match rest.next().as_deref() {
        Some(s) if s.eq_ignore_ascii_case("userFlows") => match rest.next().as_deref() {
            None => Target::Collection,
            Some("$count") => Target::Count,
            Some("$ref") => Target::Ref,
            Some(id) => Target::Item(id.to_owned()),
        },
        Some(s) => match key_syntax(s) {
            Some(id) => Target::Item(id),
            None => return Err(not_found(s)),
        },
        None => return Err(only_user_flows()),
    };
    match rest.next().as_deref() {
        Some(extra) => Err(not_found(extra)),
        None => Ok(target),
    }
}

/// `userFlows('B2C_1_x')` (or unquoted) to `B2C_1_x`; OData doubles a quote inside quotes.
fn key_syntax(segment: &str) -> Option<String> {
    const NAME: &str = "userFlows(";
    if segment.len() <= NAME.len() || !segment.is_char_boundary(NAME.len()) {
        return None;
    }
    let (head, tail) = segment.split_at(NAME.len());
    if !head.eq_ignore_ascii_case(NAME) {
        return None;
    }
    let inner = tail.strip_suffix(')')?;
    let id = match inner.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
        Some(quoted) => quoted.replace("''", "'"),
        None => inner.to_owned(),
    };
    Some(id)
}

fn not_found(segment: &str) -> ApiError {
    ApiError::bad_request(format!("Resource not found for the segment '{segment}'."))
}

fn only_user_flows() -> ApiError {
    ApiError::bad_request("This emulator serves only /beta/identity/userFlows.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_collection_and_its_children() {
        assert_eq!(parse("/beta/identity/userFlows"), Ok(Target::Collection));
        assert_eq!(parse("/beta/identity/userFlows/"), Ok(Target::Collection));
        assert_eq!(parse("/BETA/Identity/userflows"), Ok(Target::Collection));
        assert_eq!(parse("/beta/identity/userFlows/$count"), Ok(Target::Count));
        assert_eq!(parse("/beta/identity/userFlows/$ref"), Ok(Target::Ref));
        assert_eq!(
            parse("/beta/identity/userFlows/B2C_1_Pol1"),
            Ok(Target::Item("B2C_1_Pol1".into()))
        );
    }

    #[test]
    fn key_syntax_and_percent_encoding() {
        assert_eq!(
            parse("/beta/identity/userFlows('B2C_1_Pol1')"),
            Ok(Target::Item("B2C_1_Pol1".into()))
        );
        assert_eq!(
            parse("/beta/identity/userFlows(%27B2C_1_Pol1%27)"),
            Ok(Target::Item("B2C_1_Pol1".into()))
        );
        assert_eq!(
            parse("/beta/identity/userFlows/B2C_1_a%20b"),
            Ok(Target::Item("B2C_1_a b".into()))
        );
    }

    #[test]
    fn unknown_segments_are_named() {
        let err = |p: &str| parse(p).unwrap_err().to_string();
        assert_eq!(
            err("/beta/identity/userFlowz"),
            "Resource not found for the segment 'userFlowz'."
        );
        assert_eq!(
            err("/beta/users"),
            "Resource not found for the segment 'users'."
        );
        assert_eq!(
            err("/beta/identity/userFlows/B2C_1_a/languages"),
            "Resource not found for the segment 'languages'."
        );
        assert!(err("/v1.0/identity/userFlows").contains("Invalid version: v1.0"));
        assert!(err("/").starts_with("No version in the path."));
    }
}
