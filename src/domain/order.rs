//! The orders a listing can take (`$orderby`) and the cursor a page ends at. Every order is
//! total: its keys, then creation position (oldest first, whatever the keys' directions), so a
//! cursor names exactly one place in it.

use std::cmp::Ordering;

use super::flow::{UserFlow, UserFlowType};

/// A property a listing can be ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Property {
    /// By the id's ASCII lower-cased bytes.
    Id,
    /// By the enum's declared order.
    Type,
    /// By value.
    Version,
}

impl Property {
    /// The property's name, as in JSON.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::Type => "userFlowType",
            Self::Version => "userFlowTypeVersion",
        }
    }
}

/// One key of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderKey {
    pub property: Property,
    pub descending: bool,
}

/// Where a page ended: the sort values of its last flow and that flow's creation position, so
/// the next page starts right after it even if that flow was deleted meanwhile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub position: u64,
    /// The id in ASCII lower case.
    pub id: String,
    pub kind: UserFlowType,
    /// [`super::UserFlowTypeVersion::sort_key`].
    pub version: u32,
}

impl Cursor {
    /// The cursor right at `flow`, created at `position`.
    #[must_use]
    pub fn at(position: u64, flow: &UserFlow) -> Self {
        Self {
            position,
            id: flow.id.as_str().to_ascii_lowercase(),
            kind: flow.user_flow_type,
            version: flow.user_flow_type_version.sort_key(),
        }
    }
}

/// The values a flow is ordered by: of a stored flow or of a cursor.
#[derive(Debug, Clone, Copy)]
pub struct SortValues<'a> {
    pub position: u64,
    /// The id in any ASCII case: compared by its lower-cased bytes.
    pub id: &'a str,
    pub kind: UserFlowType,
    pub version: u32,
}

impl<'a> SortValues<'a> {
    #[must_use]
    pub fn of(position: u64, flow: &'a UserFlow) -> Self {
        Self {
            position,
            id: flow.id.as_str(),
            kind: flow.user_flow_type,
            version: flow.user_flow_type_version.sort_key(),
        }
    }
}

impl Cursor {
    #[must_use]
    pub fn values(&self) -> SortValues<'_> {
        SortValues {
            position: self.position,
            id: &self.id,
            kind: self.kind,
            version: self.version,
        }
    }
}

/// Compares ids by their ASCII lower-cased bytes. This is the id index's comparison, run on
/// every lookup and insert, and ids of one client often share a long prefix (`B2C_1_` and a
/// run tag): the bytes they share are skipped eight at a time, then a byte loop lower-cases
/// from the first difference.
#[must_use]
pub fn compare_ids(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut same = 0;
    while let (Some(x), Some(y)) = (word(a, same), word(b, same)) {
        if x != y {
            break;
        }
        same += 8;
    }
    let (a, b) = (&a[same..], &b[same..]);
    for (x, y) in a.iter().zip(b) {
        if x != y {
            let (x, y) = (x.to_ascii_lowercase(), y.to_ascii_lowercase());
            if x != y {
                return x.cmp(&y);
            }
        }
    }
    a.len().cmp(&b.len())
}

/// The eight bytes of `s` from `at`, if it has them.
fn word(s: &[u8], at: usize) -> Option<u64> {
    let bytes: [u8; 8] = s.get(at..at + 8)?.try_into().ok()?;
    Some(u64::from_ne_bytes(bytes))
}

/// How `a` and `b` compare in the order `keys`.
#[must_use]
pub fn compare(keys: &[OrderKey], a: SortValues<'_>, b: SortValues<'_>) -> Ordering {
    for key in keys {
        let order = match key.property {
            Property::Id => compare_ids(a.id, b.id),
            Property::Type => a.kind.cmp(&b.kind),
            Property::Version => a.version.cmp(&b.version),
        };
        let order = if key.descending {
            order.reverse()
        } else {
            order
        };
        if order != Ordering::Equal {
            return order;
        }
        // Ids are unique: nothing after an id key can break a tie.
        if key.property == Property::Id {
            return Ordering::Equal;
        }
    }
    a.position.cmp(&b.position)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(id: &str, kind: UserFlowType, version: f64) -> UserFlow {
        UserFlow::sample_of(id, kind, version)
    }

    #[test]
    fn keys_then_position_oldest_first_in_both_directions() {
        let a = flow("a", UserFlowType::SignIn, 1.0);
        let b = flow("B", UserFlowType::SignIn, 2.0);
        let at_b = Cursor::at(5, &b);
        let at_b = at_b.values();
        let compare =
            |keys: &[OrderKey], position, flow| compare(keys, SortValues::of(position, flow), at_b);
        let asc = [OrderKey {
            property: Property::Type,
            descending: false,
        }];
        let desc = [OrderKey {
            property: Property::Type,
            descending: true,
        }];
        // Same type: the older one comes first either way.
        assert_eq!(compare(&asc, 1, &a), Ordering::Less);
        assert_eq!(compare(&desc, 1, &a), Ordering::Less);
        let by_id = [OrderKey {
            property: Property::Id,
            descending: true,
        }];
        assert_eq!(compare(&by_id, 1, &a), Ordering::Greater);
        let by_version = [OrderKey {
            property: Property::Version,
            descending: false,
        }];
        assert_eq!(compare(&by_version, 9, &a), Ordering::Less);
        assert_eq!(compare(&[], 9, &a), Ordering::Greater);
        assert_eq!(compare_ids("B2C_1_Ab", "b2c_1_aB"), Ordering::Equal);
        assert_eq!(compare_ids("B2C_1_Z", "b2c_1_a_"), Ordering::Greater);
    }

    #[test]
    fn ids_compare_as_their_lower_cased_bytes_wherever_they_differ() {
        // Pairs that share 0 to 40 bytes, then differ by case only, by a letter, by '_' (which
        // sorts between upper- and lower-case letters) or by length.
        let base = "B2C_1_3f9c2a7be41dT1n12345678901234567890xyz";
        let mut pairs = Vec::new();
        for cut in 0..=40 {
            let (head, tail) = base.split_at(cut);
            for other in ["", "a", "A", "_", "z", "Z", "0"] {
                pairs.push((base.to_owned(), format!("{head}{other}")));
                pairs.push((
                    base.to_owned(),
                    format!("{}{other}{tail}", head.to_lowercase()),
                ));
                pairs.push((
                    base.to_lowercase(),
                    format!("{}{other}", head.to_uppercase()),
                ));
            }
        }
        for (a, b) in pairs {
            let expected = a.to_ascii_lowercase().cmp(&b.to_ascii_lowercase());
            assert_eq!(compare_ids(&a, &b), expected, "{a} against {b}");
            assert_eq!(compare_ids(&b, &a), expected.reverse(), "{b} against {a}");
        }
    }
}
