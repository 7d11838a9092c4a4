//! OData query options. The `$` prefix is optional, as on Graph beta, and names compare ignoring
//! ASCII case. An option a route does not take, given twice or with an empty value is refused
//! with a 400 that names it; custom options (no `$`, not a system option name) are ignored, as
//! OData allows. Also the `$skiptoken`: the walk's horizon and cursor, bound to the tenant and
//! the query it was handed out for.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::filter::{parse_filter, parse_orderby, parse_select};
use crate::domain::{Cursor, Filter, Property, UserFlowType};
use crate::tenant::ListQuery;

/// (policy) Page size when the client gives no `$top`.
pub const DEFAULT_PAGE_SIZE: usize = 100;
/// Largest `$top` accepted.
pub const MAX_TOP: usize = 999;

/// What RFC 3986 leaves unescaped in a query value: its unreserved characters.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The order of the options a nextLink repeats.
const CARRIED_ORDER: [&str; 7] = [
    "$filter", "$orderby", "$select", "$top", "$skip", "$count", "$expand",
];

/// The layout version of a skiptoken, its first byte.
const TOKEN_FORMAT: u8 = 1;

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

/// The options of a list request, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct ListOptions {
    pub query: ListQuery,
    /// `None`: every property.
    pub select: Option<Vec<Property>>,
    /// The options the nextLink repeats (name with `$`, decoded value), in a fixed order.
    carried: Vec<(&'static str, String)>,
    /// Binds a skiptoken to the tenant and the options that shape the walk.
    fingerprint: [u8; 8],
}

impl ListOptions {
    /// The `@odata.nextLink` after this page: every option of the request, percent-encoded,
    /// and a skiptoken for `horizon` and `cursor`.
    #[must_use]
    pub fn next_link(&self, collection_url: &str, horizon: u64, cursor: &Cursor) -> String {
        let mut link = String::with_capacity(collection_url.len() + 64);
        link.push_str(collection_url);
        link.push('?');
        for (name, value) in &self.carried {
            link.push_str(name);
            link.push('=');
            link.extend(utf8_percent_encode(value, QUERY_VALUE));
            link.push('&');
        }
        link.push_str("$skiptoken=");
        link.push_str(&skiptoken(self.fingerprint, horizon, cursor));
        link
    }
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
        let value = decode(raw_value);
        if value.trim().is_empty() {
            return Err(ApiError::bad_request(format!(
                "The query option '{shown}' has an empty value."
            )));
        }
        if seen.iter().any(|o| o.name == bare) {
            return Err(ApiError::bad_request(format!(
                "The query option '${bare}' was specified more than once."
            )));
        }
        seen.push(Option_ {
            name: bare,
            shown,
            value,
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

/// `text` as a whole number of decimal digits, one past `u64` read as `u64::MAX`; `None` when
/// it is not one (empty, a sign, anything but digits).
pub(super) fn saturating_whole_number(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse().unwrap_or(u64::MAX))
}

fn invalid_value(option: &Option_, expected: &str) -> ApiError {
    ApiError::bad_request(format!(
        "Invalid value '{}' for the query option '{}': {}.",
        option.value,
        option.shown,
        expected.trim_end_matches('.')
    ))
}

fn filter_of(option: &Option_) -> Result<Filter, ApiError> {
    parse_filter(&option.value).map_err(ApiError::bad_request)
}

/// Parses the options of `GET /beta/identity/userFlows` for `tenant`.
pub fn parse_list(query: &str, tenant: &str) -> Result<ListOptions, ApiError> {
    let mut list = ListQuery {
        filter: None,
        order: Vec::new(),
        resume: None,
        skip: 0,
        size: DEFAULT_PAGE_SIZE,
        count: false,
    };
    let mut select = None;
    let mut token = None;
    let mut carried: Vec<(&'static str, String)> = Vec::new();
    for option in options(query)? {
        let name: &'static str = match option.name.as_str() {
            "filter" => {
                list.filter = Some(filter_of(&option)?);
                "$filter"
            }
            "orderby" => {
                list.order =
                    parse_orderby(&option.value).map_err(|e| invalid_value(&option, &e))?;
                "$orderby"
            }
            "select" => {
                select = parse_select(&option.value).map_err(|e| invalid_value(&option, &e))?;
                "$select"
            }
            "top" => {
                list.size = option
                    .value
                    .trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|t| (1..=MAX_TOP).contains(t))
                    .ok_or_else(|| {
                        invalid_value(&option, &format!("expected an integer from 1 to {MAX_TOP}"))
                    })?;
                "$top"
            }
            "skip" => {
                // A whole number past any tenant's size skips everything, however long.
                let skip = saturating_whole_number(option.value.trim())
                    .ok_or_else(|| invalid_value(&option, "expected a non-negative integer"))?;
                list.skip = usize::try_from(skip).unwrap_or(usize::MAX);
                "$skip"
            }
            "count" => {
                list.count = match option.value.trim().to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(invalid_value(&option, "expected true or false")),
                };
                "$count"
            }
            "skiptoken" => {
                token = Some(option.value);
                continue;
            }
            "expand" if option.value.trim() == "*" => "$expand",
            _ => return Err(unsupported(&option)),
        };
        carried.push((name, option.value));
    }
    carried.sort_by_key(|(name, _)| CARRIED_ORDER.iter().position(|n| n == name));
    let fingerprint = fingerprint(tenant, &list, select.as_deref());
    if let Some(token) = token {
        list.resume = Some(parse_skiptoken(&token, fingerprint)?);
    }
    Ok(ListOptions {
        query: list,
        select,
        carried,
        fingerprint,
    })
}

/// Parses the options of `GET /beta/identity/userFlows/$count`: `$filter` only.
pub fn parse_count(query: &str) -> Result<Option<Filter>, ApiError> {
    let mut filter = None;
    for option in options(query)? {
        match option.name.as_str() {
            "filter" => filter = Some(filter_of(&option)?),
            _ => return Err(unsupported(&option)),
        }
    }
    Ok(filter)
}

/// Parses the options of a get by id: `$select` and `$expand=*`. `None` selects all.
pub fn parse_get(query: &str) -> Result<Option<Vec<Property>>, ApiError> {
    let mut select = None;
    for option in options(query)? {
        match option.name.as_str() {
            "select" => {
                select = parse_select(&option.value).map_err(|e| invalid_value(&option, &e))?;
            }
            "expand" if option.value.trim() == "*" => {}
            _ => return Err(unsupported(&option)),
        }
    }
    Ok(select)
}

/// Refuses every system query option: for routes that take none.
pub fn parse_none(query: &str) -> Result<(), ApiError> {
    match options(query)?.first() {
        Some(option) => Err(unsupported(option)),
        None => Ok(()),
    }
}

/// What a skiptoken is bound to: the tenant and every option that shapes the walk (`$top` may
/// change between pages).
fn fingerprint(tenant: &str, list: &ListQuery, select: Option<&[Property]>) -> [u8; 8] {
    let shape = format!(
        "{:?}|{:?}|{:?}|{}|{}",
        list.filter, list.order, select, list.skip, list.count
    );
    let digest = Sha256::new()
        .chain_update(tenant.as_bytes())
        .chain_update([0])
        .chain_update(shape.as_bytes())
        .finalize();
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

/// The opaque `$skiptoken`: format, fingerprint, horizon, then the cursor (position, type,
/// version, lower-cased id).
#[must_use]
pub fn skiptoken(fingerprint: [u8; 8], horizon: u64, cursor: &Cursor) -> String {
    let mut bytes = Vec::with_capacity(30 + cursor.id.len());
    bytes.push(TOKEN_FORMAT);
    bytes.extend_from_slice(&fingerprint);
    bytes.extend_from_slice(&horizon.to_be_bytes());
    bytes.extend_from_slice(&cursor.position.to_be_bytes());
    bytes.push(cursor.kind.rank());
    bytes.extend_from_slice(&cursor.version.to_be_bytes());
    bytes.extend_from_slice(cursor.id.as_bytes());
    URL_SAFE_NO_PAD.encode(bytes)
}

fn parse_skiptoken(token: &str, fingerprint: [u8; 8]) -> Result<(u64, Cursor), ApiError> {
    let invalid = || {
        ApiError::bad_request(
            "The $skiptoken is not valid: follow the @odata.nextLink of the previous page.",
        )
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(token.trim())
        .map_err(|_| invalid())?;
    if bytes.len() < 30 || bytes[0] != TOKEN_FORMAT {
        return Err(invalid());
    }
    if bytes[1..9] != fingerprint {
        return Err(ApiError::bad_request(
            "The $skiptoken was issued for another query or tenant: a walk keeps its $filter, \
             $orderby, $select, $skip and $count; follow the @odata.nextLink of the previous page.",
        ));
    }
    let u64_at = |at: usize| {
        <[u8; 8]>::try_from(&bytes[at..at + 8])
            .map(u64::from_be_bytes)
            .map_err(|_| invalid())
    };
    let horizon = u64_at(9)?;
    let position = u64_at(17)?;
    let kind = UserFlowType::from_rank(bytes[25]).ok_or_else(invalid)?;
    let version = <[u8; 4]>::try_from(&bytes[26..30])
        .map(u32::from_be_bytes)
        .map_err(|_| invalid())?;
    let id = std::str::from_utf8(&bytes[30..]).map_err(|_| invalid())?;
    Ok((
        horizon,
        Cursor {
            position,
            id: id.to_ascii_lowercase(),
            kind,
            version,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::OrderKey;

    const T: &str = "tenant-a";

    fn cursor() -> Cursor {
        Cursor {
            position: 41,
            id: "b2c_1_x".into(),
            kind: UserFlowType::SignUp,
            version: 3.0_f32.to_bits(),
        }
    }

    #[test]
    fn defaults() {
        let q = parse_list("", T).unwrap();
        assert_eq!(q.query.size, 100);
        assert_eq!(q.query.filter, None);
        assert!(q.query.order.is_empty() && q.query.resume.is_none() && !q.query.count);
        assert_eq!(q.select, None);
    }

    #[test]
    fn every_option_with_or_without_dollar_in_any_case() {
        let q = parse_list(
            "$top=5&COUNT=true&$Filter=startswith(id,'B2C_1_a')&orderby=id%20desc&$select=id&skip=2&$expand=*",
            T,
        )
        .unwrap();
        assert_eq!(q.query.size, 5);
        assert!(q.query.count);
        assert_eq!(q.query.skip, 2);
        assert_eq!(q.query.filter, Some(Filter::IdStartsWith("b2c_1_a".into())));
        assert_eq!(
            q.query.order,
            [OrderKey {
                property: Property::Id,
                descending: true
            }]
        );
        assert_eq!(q.select, Some(vec![Property::Id]));
        assert_eq!(parse_list("top=999", T).unwrap().query.size, 999);
        // `+` is a space.
        assert!(parse_list("$filter=id+eq+'a'", T).is_ok());
    }

    #[test]
    fn a_next_link_carries_every_option_encoded_and_its_token_reads_back() {
        let q = parse_list("$filter=id eq 'O''B'&$top=2&$select=id,userFlowType&x=1", T).unwrap();
        let link = q.next_link("http://h/beta/identity/userFlows", 7, &cursor());
        let (path, query) = link.split_once('?').unwrap();
        assert_eq!(path, "http://h/beta/identity/userFlows");
        assert!(
            query.starts_with(
                "$filter=id%20eq%20%27O%27%27B%27&$select=id%2CuserFlowType&$top=2&$skiptoken="
            ),
            "{query}"
        );
        let again = parse_list(query, T).unwrap();
        assert_eq!(again.query.resume, Some((7, cursor())));
        assert_eq!(again.query.filter, q.query.filter);
        // `$top` may change between pages.
        let resized = query.replace("$top=2", "$top=9");
        assert_eq!(
            parse_list(&resized, T).unwrap().query.resume,
            Some((7, cursor()))
        );
    }

    #[test]
    fn a_token_is_bound_to_its_tenant_and_query() {
        let q = parse_list("$filter=id eq 'a'", T).unwrap();
        let link = q.next_link("u", 1, &cursor());
        let token = link.split("$skiptoken=").nth(1).unwrap();
        let with = |query: &str| format!("{query}&$skiptoken={token}");
        assert!(parse_list(&with("$filter=id eq 'a'"), T).is_ok());
        for (query, tenant) in [
            ("$filter=id eq 'a'", "tenant-b"),
            ("$filter=id eq 'b'", T),
            ("$filter=id eq 'a'&$orderby=id", T),
            ("$filter=id eq 'a'&$select=id", T),
            ("$filter=id eq 'a'&$skip=1", T),
            ("$filter=id eq 'a'&$count=true", T),
            ("", T),
        ] {
            let message = parse_list(&with(query), tenant).unwrap_err().to_string();
            assert!(
                message.contains("another query or tenant"),
                "{query}: {message}"
            );
        }
        for bad in ["zzz", "AAAA", &token[..token.len() - 4]] {
            let message = parse_list(&format!("$skiptoken={bad}"), T)
                .unwrap_err()
                .to_string();
            assert!(
                message.contains("$skiptoken is not valid"),
                "{bad}: {message}"
            );
        }
    }

    #[test]
    fn bad_values_name_the_option() {
        for (query, needle) in [
            ("$top=0", "$top"),
            ("$top=1000", "$top"),
            ("$top=abc", "$top"),
            ("$skip=-1", "$skip"),
            ("$count=yes", "$count"),
            ("$skiptoken=zzz", "$skiptoken"),
            ("$filter=id eq x", "Invalid filter clause"),
            ("$orderby=name", "$orderby"),
            ("$select=name", "$select"),
            ("$search=x", "$search"),
            ("$expand=languages", "$expand"),
            ("$foo=1", "$foo"),
            ("$top=1&top=2", "$top"),
            ("$filter=", "$filter"),
            ("$orderby=%20", "$orderby"),
        ] {
            let message = parse_list(query, T).unwrap_err().to_string();
            assert!(message.contains(needle), "{query}: {message}");
        }
    }

    #[test]
    fn blank_values_are_empty_large_skips_are_taken_and_messages_end_once() {
        for blank in ["$filter=%20", "$filter=+", "$orderby=%09"] {
            let message = parse_list(blank, T).unwrap_err().to_string();
            assert!(message.contains("has an empty value"), "{blank}: {message}");
        }
        let list = parse_list("$skip=99999999999", T).unwrap();
        assert_eq!(list.query.skip, 99_999_999_999);
        assert!(parse_list("$skip=1e3", T).is_err());
        assert!(parse_list("$skip=-1", T).is_err());
        // Past any tenant: everything skipped, not refused.
        let list = parse_list("$skip=99999999999999999999999", T).unwrap();
        assert_eq!(list.query.skip, usize::MAX);
        let message = parse_list("$select=ID", T).unwrap_err().to_string();
        assert!(
            message.ends_with("'microsoft.graph.identityUserFlow'."),
            "{message}"
        );
    }

    #[test]
    fn each_route_takes_its_own_options() {
        assert!(parse_list("foo=bar&$expand=*", T).is_ok());
        assert!(parse_none("foo=bar").is_ok());
        assert!(parse_none("$select=id").is_err());
        assert_eq!(
            parse_count("$filter=id eq 'a'").unwrap(),
            Some(Filter::Id(crate::domain::Equality::Eq, "a".into()))
        );
        assert!(parse_count("$top=1")
            .unwrap_err()
            .to_string()
            .contains("$top"));
        assert_eq!(
            parse_get("$select=userFlowType&$expand=*").unwrap(),
            Some(vec![Property::Type])
        );
        assert!(parse_get("$filter=id eq 'a'")
            .unwrap_err()
            .to_string()
            .contains("$filter"));
    }
}
