//! The identityUserFlow resource and its value types. Each type has a `parse` constructor that
//! enforces the rules of docs/reference.md §2, so a `UserFlow` that exists is a valid one.

use std::fmt;
use std::hash::{BuildHasher, Hasher};

use compact_str::CompactString;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The prefix Azure AD B2C gives every user flow id.
pub const ID_PREFIX: &str = "B2C_1_";
/// (policy) Longest name allowed after the prefix.
const MAX_NAME_LEN: usize = 100;

/// A stored user flow id: always starts with `B2C_1_` (in any ASCII case) and keeps the case it
/// was created with. Two ids are the same flow when their [`FlowKey`]s are equal. Ids of up to
/// 24 bytes (the prefix and 18 more) are kept inline, without a heap allocation of their own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserFlowId(CompactString);

impl UserFlowId {
    /// Validates an id as a client sent it and adds the prefix when it is missing.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() {
            return Err("The property 'id' must not be empty.".to_owned());
        }
        let prefixed = has_prefix(raw);
        // `has_prefix` compared ASCII bytes, so this index is a char boundary.
        let name = if prefixed {
            &raw[ID_PREFIX.len()..]
        } else {
            raw
        };
        let valid_chars = name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if name.is_empty() || name.len() > MAX_NAME_LEN || !valid_chars {
            return Err(format!(
                "Invalid value '{raw}' for property 'id': after the '{ID_PREFIX}' prefix an id \
                 must have 1 to {MAX_NAME_LEN} characters of A-Z, a-z, 0-9, '_' and '-'."
            ));
        }
        let mut full = CompactString::with_capacity(ID_PREFIX.len() + name.len());
        full.push_str(if prefixed {
            &raw[..ID_PREFIX.len()]
        } else {
            ID_PREFIX
        });
        full.push_str(name);
        Ok(Self(full))
    }

    /// An id read back from a stored event. Events are facts, so it is not validated again
    /// (the same as deserializing one).
    #[must_use]
    pub fn from_stored(stored: &str) -> Self {
        Self(CompactString::new(stored))
    }

    /// The id as stored and answered.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-insensitive identity of this id.
    #[must_use]
    pub fn key(&self) -> FlowKey {
        FlowKey::of(&self.0)
    }
}

impl fmt::Display for UserFlowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn has_prefix(raw: &str) -> bool {
    raw.len() >= ID_PREFIX.len()
        && raw.as_bytes()[..ID_PREFIX.len()].eq_ignore_ascii_case(ID_PREFIX.as_bytes())
}

/// The identity of a flow: its stored id in ASCII lower case (`B2C_1_Pol1` and `b2c_1_POL1` are
/// one flow). Lookups by a path id use this without validating it: an id that cannot exist is
/// simply not found.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey(String);

impl FlowKey {
    /// The key of a stored id, as it appears in a request path.
    #[must_use]
    pub fn of(stored_id: &str) -> Self {
        Self(stored_id.to_ascii_lowercase())
    }

    /// The key as text (ASCII lower case).
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The hash of an id's key, computed without building the key: the bytes in ASCII lower case,
/// a stack buffer at a time. Equal for every id of one flow, whatever their case.
pub fn key_hash(build: &impl BuildHasher, id: &str) -> u64 {
    let mut hasher = build.build_hasher();
    let mut buffer = [0u8; 64];
    for part in id.as_bytes().chunks(buffer.len()) {
        let lower = &mut buffer[..part.len()];
        lower.copy_from_slice(part);
        lower.make_ascii_lowercase();
        hasher.write(lower);
    }
    hasher.write_usize(id.len());
    hasher.finish()
}

/// The kind of user flow. `unknownFutureValue` is Graph's "newer than your client" sentinel; it
/// is never accepted on input, so it has no variant.
/// Ordered as declared, which is how `$orderby` sorts it (OData orders enum members by value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum UserFlowType {
    SignUp,
    SignIn,
    SignUpOrSignIn,
    PasswordReset,
    ProfileUpdate,
    ResourceOwner,
}

impl UserFlowType {
    /// Every accepted value, in Graph's metadata order.
    pub const ALL: [Self; 6] = [
        Self::SignUp,
        Self::SignIn,
        Self::SignUpOrSignIn,
        Self::PasswordReset,
        Self::ProfileUpdate,
        Self::ResourceOwner,
    ];

    /// The value as it appears in JSON.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::SignUp => "signUp",
            Self::SignIn => "signIn",
            Self::SignUpOrSignIn => "signUpOrSignIn",
            Self::PasswordReset => "passwordReset",
            Self::ProfileUpdate => "profileUpdate",
            Self::ResourceOwner => "resourceOwner",
        }
    }

    /// Parses a JSON value; OData enum members are case-sensitive.
    pub fn parse(raw: &str) -> Result<Self, String> {
        Self::from_name(raw.as_bytes()).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|t| t.as_str()).collect();
            format!(
                "Invalid value '{raw}' for property 'userFlowType': expected one of {}.",
                names.join(", ")
            )
        })
    }

    /// The position of this value in the declaration (its OData value).
    #[must_use]
    pub fn rank(self) -> u8 {
        self as u8
    }

    /// The value of that rank, if any.
    #[must_use]
    pub fn from_rank(rank: u8) -> Option<Self> {
        Self::ALL.get(usize::from(rank)).copied()
    }

    /// The type of that exact name (as bytes, so a body's raw text needs no check first), if
    /// any.
    #[must_use]
    pub fn from_name(name: &[u8]) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str().as_bytes() == name)
    }
}

/// `userFlowTypeVersion`, an `Edm.Single`: finite and greater than zero once rounded to single
/// precision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UserFlowTypeVersion(f32);

impl UserFlowTypeVersion {
    /// Validates a JSON number.
    pub fn parse(value: f64) -> Result<Self, String> {
        let single = value as f32;
        if single.is_finite() && single > 0.0 {
            Ok(Self(single))
        } else {
            Err(format!(
                "Invalid value '{value}' for property 'userFlowTypeVersion': expected a finite \
                 Edm.Single greater than 0."
            ))
        }
    }

    /// A version read back from a stored event, not validated again (the same as deserializing
    /// one).
    #[must_use]
    pub const fn from_stored(value: f32) -> Self {
        Self(value)
    }

    /// The single-precision value.
    #[must_use]
    pub const fn value(self) -> f32 {
        self.0
    }

    /// A key that orders as the value does: versions are positive and finite, and such `f32`s
    /// order as their bit patterns.
    #[must_use]
    pub const fn sort_key(self) -> u32 {
        self.0.to_bits()
    }
}

/// Largest magnitude below which every integer is exact in an `f64`/`i64` round trip.
const EXACT_INTEGER_LIMIT: f32 = 9_007_199_254_740_992.0;

impl Serialize for UserFlowTypeVersion {
    /// Written as a whole number when it is one (`1`, not `1.0`; `10000000000000000`, not
    /// `1e16`), else as the shortest decimal that reads back as the same `f32` (`1.1`, not
    /// `1.100000023841858`). A whole number past `f64`'s exact integers is written with the
    /// shortest digits that read back as the same `f32`, not its exact binary value.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0.fract() != 0.0 {
            return serializer.serialize_f32(self.0);
        }
        if self.0.abs() < EXACT_INTEGER_LIMIT {
            return serializer.serialize_i64(self.0 as i64);
        }
        // `Display` writes an f32 as its shortest round-trip digits, never with an exponent;
        // every positive finite f32 fits in a u128 (versions are positive).
        match self.0.to_string().parse::<u128>() {
            Ok(whole) => serializer.serialize_u128(whole),
            Err(_) => serializer.serialize_f32(self.0),
        }
    }
}

impl<'de> Deserialize<'de> for UserFlowTypeVersion {
    /// Stored events are facts: read back without re-validating.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        f32::deserialize(deserializer).map(Self)
    }
}

/// One user flow, exactly as answered and stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserFlow {
    pub id: UserFlowId,
    pub user_flow_type: UserFlowType,
    pub user_flow_type_version: UserFlowTypeVersion,
}

#[cfg(test)]
impl UserFlow {
    /// A valid `signIn` flow of version 1 with id `id` (prefixed when it lacks the prefix): the
    /// flow unit tests build when only its id matters.
    pub(crate) fn sample(id: &str) -> Self {
        Self::sample_of(id, UserFlowType::SignIn, 1.0)
    }

    /// A valid flow of these values.
    pub(crate) fn sample_of(id: &str, kind: UserFlowType, version: f64) -> Self {
        Self {
            id: UserFlowId::parse(id).unwrap(),
            user_flow_type: kind,
            user_flow_type_version: UserFlowTypeVersion::parse(version).unwrap(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_written_whole_when_whole_and_read_back_the_same() {
        for (value, written) in [
            (1.0, "1"),
            (1.1, "1.1"),
            (0.000_1, "0.0001"),
            (16_777_217.0, "16777216"),
            (1e16, "10000000000000000"),
            (f32::MAX, "340282350000000000000000000000000000000"),
        ] {
            let version = UserFlowTypeVersion::from_stored(value);
            let text = serde_json::to_string(&version).unwrap();
            assert_eq!(text, written, "{value}");
            let back: UserFlowTypeVersion = serde_json::from_str(&text).unwrap();
            assert_eq!(back.value().to_bits(), value.to_bits(), "{value}");
        }
    }

    #[test]
    fn id_without_prefix_gets_it() {
        assert_eq!(UserFlowId::parse("Pol1").unwrap().as_str(), "B2C_1_Pol1");
    }

    #[test]
    fn id_with_prefix_in_any_case_is_kept_as_given() {
        assert_eq!(
            UserFlowId::parse("B2C_1_Pol1").unwrap().as_str(),
            "B2C_1_Pol1"
        );
        assert_eq!(
            UserFlowId::parse("b2c_1_Pol1").unwrap().as_str(),
            "b2c_1_Pol1"
        );
    }

    #[test]
    fn ids_compare_ignoring_ascii_case() {
        let a = UserFlowId::parse("B2C_1_pol1").unwrap();
        let b = UserFlowId::parse("b2c_1_POL1").unwrap();
        let c = UserFlowId::parse("POL1").unwrap();
        assert_eq!(a.key(), b.key());
        assert_eq!(a.key(), c.key());
        assert_ne!(a.as_str(), b.as_str());
    }

    #[test]
    fn id_rules_refuse_bad_names() {
        assert!(UserFlowId::parse("").is_err());
        assert!(UserFlowId::parse("B2C_1_").is_err());
        assert!(UserFlowId::parse("has space").is_err());
        assert!(UserFlowId::parse("dot.ted").is_err());
        assert!(UserFlowId::parse("é").is_err());
        assert!(UserFlowId::parse(&"a".repeat(101)).is_err());
        assert!(UserFlowId::parse(&"a".repeat(100)).is_ok());
        assert!(UserFlowId::parse("a-b_C9").is_ok());
    }

    #[test]
    fn flow_type_is_case_sensitive_and_refuses_the_sentinel() {
        assert_eq!(
            UserFlowType::parse("signUpOrSignIn"),
            Ok(UserFlowType::SignUpOrSignIn)
        );
        assert!(UserFlowType::parse("signup").is_err());
        assert!(UserFlowType::parse("unknownFutureValue").is_err());
        assert!(UserFlowType::parse("String")
            .unwrap_err()
            .contains("'String'"));
    }

    #[test]
    fn version_must_be_finite_and_positive_in_single_precision() {
        assert!(UserFlowTypeVersion::parse(1.0).is_ok());
        assert!(UserFlowTypeVersion::parse(0.0).is_err());
        assert!(UserFlowTypeVersion::parse(-1.0).is_err());
        assert!(UserFlowTypeVersion::parse(1e300).is_err(), "overflows f32");
        assert!(
            UserFlowTypeVersion::parse(1e-300).is_err(),
            "rounds to 0 in f32"
        );
    }

    #[test]
    fn version_is_written_whole_or_shortest_single() {
        let show = |v: f64| serde_json::to_string(&UserFlowTypeVersion::parse(v).unwrap()).unwrap();
        assert_eq!(show(1.0), "1");
        assert_eq!(show(3.0), "3");
        assert_eq!(show(1.1), "1.1");
        assert_eq!(show(2.5), "2.5");
        assert_eq!(show(0.1), "0.1");
    }
}
