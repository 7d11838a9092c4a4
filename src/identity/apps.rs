//! The apps the token endpoint knows: `--app CLIENT_ID:SECRET[:ROLE,ROLE…]` registrations. With
//! none registered, any client id and secret get a read-write token (policy).

use std::str::FromStr;

use super::token::READ_WRITE;
use super::IdentityError;

/// One registered app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    pub client_id: String,
    pub secret: String,
    /// The application roles its tokens carry.
    pub roles: Vec<String>,
}

impl FromStr for App {
    type Err = String;

    /// `CLIENT_ID:SECRET` (read-write) or `CLIENT_ID:SECRET:ROLE,ROLE…` (those roles; an empty
    /// list is none). The secret cannot hold a `:`.
    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let mut parts = spec.splitn(3, ':');
        let (Some(client_id), Some(secret)) = (parts.next(), parts.next()) else {
            return Err(format!("'{spec}' is not CLIENT_ID:SECRET[:ROLE,ROLE...]"));
        };
        if client_id.is_empty() || secret.is_empty() {
            return Err(format!(
                "'{spec}': the client id and the secret must not be empty"
            ));
        }
        let roles = match parts.next() {
            None => vec![READ_WRITE.to_owned()],
            Some(roles) => roles
                .split(',')
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(str::to_owned)
                .collect(),
        };
        Ok(Self {
            client_id: client_id.to_owned(),
            secret: secret.to_owned(),
            roles,
        })
    }
}

/// Why the token endpoint refuses a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppError {
    /// No app with this client id is registered.
    Unknown,
    /// The app exists; the secret is not its secret.
    WrongSecret,
}

/// Every registered app.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Apps {
    apps: Vec<App>,
}

impl Apps {
    /// The registrations, refused when two share a client id: the second would never be used.
    pub fn new(apps: Vec<App>) -> Result<Self, IdentityError> {
        for (i, app) in apps.iter().enumerate() {
            if apps[..i]
                .iter()
                .any(|earlier| earlier.client_id.eq_ignore_ascii_case(&app.client_id))
            {
                return Err(IdentityError::DuplicateApp(app.client_id.clone()));
            }
        }
        Ok(Self { apps })
    }

    /// The roles a token for `client_id` with `secret` carries.
    pub fn authenticate(&self, client_id: &str, secret: &str) -> Result<Vec<String>, AppError> {
        if self.apps.is_empty() {
            return Ok(vec![READ_WRITE.to_owned()]);
        }
        let app = self
            .apps
            .iter()
            .find(|app| app.client_id.eq_ignore_ascii_case(client_id))
            .ok_or(AppError::Unknown)?;
        if constant_time_eq(app.secret.as_bytes(), secret.as_bytes()) {
            Ok(app.roles.clone())
        } else {
            Err(AppError::WrongSecret)
        }
    }
}

/// Byte equality whose time does not depend on where the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_id_registered_twice_is_refused_whatever_its_case() {
        let twice = vec!["app-1:a".parse().unwrap(), "APP-1:b".parse().unwrap()];
        assert!(matches!(
            Apps::new(twice),
            Err(IdentityError::DuplicateApp(id)) if id == "APP-1"
        ));
        let two = vec!["app-1:a".parse().unwrap(), "app-2:b".parse().unwrap()];
        assert_eq!(
            Apps::new(two).unwrap().authenticate("app-2", "b"),
            Ok(vec![READ_WRITE.to_owned()])
        );
    }

    #[test]
    fn registrations_parse_with_and_without_roles() {
        let app: App = "app-1:s3cret".parse().unwrap();
        assert_eq!(app.roles, [READ_WRITE]);
        let app: App = "app-2:pw:IdentityUserFlow.Read.All, Other".parse().unwrap();
        assert_eq!(app.roles, ["IdentityUserFlow.Read.All", "Other"]);
        let app: App = "app-3:pw:".parse().unwrap();
        assert!(app.roles.is_empty());
        for bad in ["", "only-id", ":pw", "id:"] {
            assert!(bad.parse::<App>().is_err(), "{bad}");
        }
    }

    #[test]
    fn any_client_without_registrations_only_registered_ones_with() {
        assert_eq!(
            Apps::default().authenticate("x", "y"),
            Ok(vec![READ_WRITE.to_owned()])
        );
        let apps = Apps::new(vec!["app-1:pw:R".parse().unwrap()]).unwrap();
        assert_eq!(apps.authenticate("APP-1", "pw"), Ok(vec!["R".to_owned()]));
        assert_eq!(apps.authenticate("app-1", "pW"), Err(AppError::WrongSecret));
        assert_eq!(apps.authenticate("app-2", "pw"), Err(AppError::Unknown));
    }
}
