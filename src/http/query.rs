//! OData query options. The `$` prefix is optional, as on Graph beta, and names compare ignoring
//! ASCII case. Options this emulator does not support yet are refused with a 400 that names them;
//! custom options (no `$`, not a system option name) are ignored, as OData allows.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use percent_encoding::percent_decode_str;

use super::error::ApiError;

/// (policy) Page size when the client gives no `$top`.
pub const DEFAULT_PAGE_SIZE: usize = 100;
/// Largest `$top` accepted.
pub const MAX_TOP: usize = 999;

/// System query options OData defines; any of them not supported on a route is a 400.
const SYSTEM_OPTIONS: [&str; 16] = [
    "top",
    "skip",
    "skiptoken",
    "count",
    "filter",
    "orderby",
    "select",
    "expand",
    "search",
    "format",
    "compute",
    "apply",
    "levels",
    "deltatoken",
    "index",
    "schemaversion",
];

/// The options of a list request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub top: usize,
    /// Whether `$top` was given (then nextLink repeats it).
    pub top_given: bool,
    /// Continue after this creation position (from `$skiptoken`).
    pub after: Option<u64>,
    /// `$count=true`.
    pub count: bool,
}

/// One parsed `name=value` pair, the name without `$` and in lower case.
struct Option_ {
    name: String,
    shown: String,
    value: String,
}

fn options(query: &str) -> Result<Vec<Option_>, ApiError> {
    let mut seen: Vec<Option_> = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let shown = decode(raw_name);
        let bare = shown
            .strip_prefix('$')
            .unwrap_or(&shown)
            .to_ascii_lowercase();
        let is_system = SYSTEM_OPTIONS.contains(&bare.as_str());
        if !is_system {
            if shown.starts_with('$') {
                return Err(ApiError::bad_request(format!(
                    "The query specified in the URI is not valid. Unknown query option '{shown}'."
                )));
            }
            continue;
        }
        if seen.iter().any(|o| o.name == bare) {
            return Err(ApiError::bad_request(format!(
                "The query option '${bare}' was specified more than once."
            )));
        }
        seen.push(Option_ {
            name: bare,
            shown,
            value: decode(raw_value),
        });
    }
    Ok(seen)
}

fn decode(raw: &str) -> String {
    percent_decode_str(&raw.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

fn unsupported(option: &Option_) -> ApiError {
    ApiError::bad_request(format!(
        "The query option '${}' is not supported on this request by the emulator.",
        option.name
    ))
}

/// Parses the options of `GET /beta/identity/userFlows`.
pub fn parse_list(query: &str) -> Result<ListQuery, ApiError> {
    let mut list = ListQuery {
        top: DEFAULT_PAGE_SIZE,
        top_given: false,
        after: None,
        count: false,
    };
    for option in options(query)? {
        match option.name.as_str() {
            "top" => {
                list.top = option
                    .value
                    .trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|t| (1..=MAX_TOP).contains(t))
                    .ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "Invalid value '{}' for the query option '{}': expected an integer \
                             from 1 to {MAX_TOP}.",
                            option.value, option.shown
                        ))
                    })?;
                list.top_given = true;
            }
            "skiptoken" => list.after = Some(parse_skiptoken(&option.value)?),
            "count" => {
                list.count = match option.value.trim().to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(ApiError::bad_request(format!(
                            "Invalid value '{}' for the query option '{}': expected true or false.",
                            option.value, option.shown
                        )))
                    }
                }
            }
            "expand" if option.value.trim() == "*" => {}
            _ => return Err(unsupported(&option)),
        }
    }
    Ok(list)
}

/// Refuses every system query option: for routes that take none.
pub fn parse_none(query: &str) -> Result<(), ApiError> {
    match options(query)?.first() {
        Some(option) => Err(unsupported(option)),
        None => Ok(()),
    }
}

/// The opaque `$skiptoken` for "continue after creation position `after`".
#[must_use]
pub fn skiptoken(after: u64) -> String {
    URL_SAFE_NO_PAD.encode(after.to_be_bytes())
}

fn parse_skiptoken(token: &str) -> Result<u64, ApiError> {
    URL_SAFE_NO_PAD
        .decode(token.trim())
        .ok()
        .and_then(|bytes| <[u8; 8]>::try_from(bytes).ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| {
            ApiError::bad_request(
                "The $skiptoken is not valid: follow the @odata.nextLink of the previous page.",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let q = parse_list("").unwrap();
        assert_eq!(
            (q.top, q.top_given, q.after, q.count),
            (100, false, None, false)
        );
    }

    #[test]
    fn top_count_and_skiptoken_with_or_without_dollar() {
        let q = parse_list(&format!("$top=5&count=TRUE&%24skiptoken={}", skiptoken(42))).unwrap();
        assert_eq!(
            (q.top, q.top_given, q.after, q.count),
            (5, true, Some(42), true)
        );
        assert_eq!(parse_list("top=999").unwrap().top, 999);
    }

    #[test]
    fn bad_values_name_the_option() {
        for (query, needle) in [
            ("$top=0", "$top"),
            ("$top=1000", "$top"),
            ("$top=abc", "$top"),
            ("$count=yes", "$count"),
            ("$skiptoken=zzz", "$skiptoken"),
            ("$filter=id eq 'x'", "$filter"),
            ("$orderby=id", "$orderby"),
            ("$search=x", "$search"),
            ("$expand=languages", "$expand"),
            ("$foo=1", "$foo"),
            ("$top=1&top=2", "$top"),
        ] {
            let message = parse_list(query).unwrap_err().to_string();
            assert!(message.contains(needle), "{query}: {message}");
        }
    }

    #[test]
    fn custom_options_and_expand_star_are_accepted() {
        assert!(parse_list("foo=bar&$expand=*").is_ok());
        assert!(parse_none("foo=bar").is_ok());
        assert!(parse_none("$select=id").is_err());
    }
}
