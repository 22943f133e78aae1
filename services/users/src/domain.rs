//! What a user is, what clients may send, and what can go wrong with it.

use runtime::FieldError;
use serde::{Deserialize, Serialize};
use server::ApiError;
use utoipa::ToSchema;

/// Chat names its guests `guest-xxxx`: no account may take a name that looks like one.
pub const RESERVED_NAME_PREFIX: &str = "guest-";

/// Longest email address accepted (RFC 5321's path limit).
pub const MAX_EMAIL_LEN: usize = 254;

/// A user as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct User {
    /// Assigned by the service.
    pub id: i64,
    /// Display name.
    #[schema(example = "Alice")]
    pub name: String,
    /// Email address, unique case-insensitively: shown only to the user themself and to
    /// admins (absent otherwise).
    #[schema(example = "alice@example.com")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// RFC 3339, UTC.
    pub created_at: String,
}

/// The body of `POST /api/users` and `PUT /api/users/{id}`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserInput {
    /// 1–200 characters after trimming.
    #[schema(example = "Alice", min_length = 1, max_length = 200)]
    pub name: String,
    /// A valid address, at most 254 characters.
    #[schema(example = "alice@example.com", max_length = 254)]
    pub email: String,
}

/// A [`UserInput`] that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidUser {
    /// Trimmed name.
    pub name: String,
    /// Trimmed address, as given.
    pub email: String,
    /// The address lower-cased: what uniqueness is decided on.
    pub email_key: String,
}

impl UserInput {
    /// Checks every field; the error lists each one at fault.
    pub fn validate(&self) -> Result<ValidUser, UserError> {
        let email = self.email.trim();
        let email_check = if email.len() > MAX_EMAIL_LEN {
            Err(FieldError::new(
                "email",
                format!("must be at most {MAX_EMAIL_LEN} characters"),
            ))
        } else if !email_address::EmailAddress::is_valid(email) {
            Err(FieldError::new("email", "is not a valid address"))
        } else {
            Ok(email.to_owned())
        };
        let name_check = server::check_name("name", &self.name).and_then(|name| {
            if name.to_lowercase().starts_with(RESERVED_NAME_PREFIX) {
                Err(FieldError::new(
                    "name",
                    format!("names starting with {RESERVED_NAME_PREFIX:?} are the chat's guests'"),
                ))
            } else {
                Ok(name)
            }
        });
        let mut values =
            server::all_valid([name_check, email_check]).map_err(UserError::Invalid)?;
        let email = values.pop().expect("two values");
        let name = values.pop().expect("two values");
        Ok(ValidUser {
            name,
            email_key: email.to_lowercase(),
            email,
        })
    }
}

/// Everything a users handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// Another user has this address (in any case).
    #[error("email {0} is already used")]
    EmailTaken(String),
    /// The input failed validation.
    #[error("invalid user")]
    Invalid(Vec<FieldError>),
    /// The database failed.
    #[error("database error")]
    Database(#[from] sqlx::Error),
}

impl From<UserError> for ApiError {
    fn from(error: UserError) -> Self {
        match error {
            UserError::EmailTaken(_) => ApiError::Conflict(error.to_string()),
            UserError::Invalid(details) => ApiError::validation(details),
            UserError::Database(cause) => {
                ApiError::Internal(anyhow::Error::new(cause).context("users database"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(name: &str, email: &str) -> UserInput {
        UserInput {
            name: name.to_owned(),
            email: email.to_owned(),
        }
    }

    #[test]
    fn valid_input_is_trimmed_and_keyed_in_lower_case() {
        let user = input("  Alice ", " Alice@Example.COM ")
            .validate()
            .expect("valid");
        assert_eq!(
            user,
            ValidUser {
                name: "Alice".into(),
                email: "Alice@Example.COM".into(),
                email_key: "alice@example.com".into()
            }
        );
    }

    #[test]
    fn every_bad_field_is_reported() {
        let Err(UserError::Invalid(details)) = input(" ", "not-an-address").validate() else {
            panic!("must be invalid");
        };
        let fields: Vec<&str> = details.iter().map(|d| d.field.as_str()).collect();
        assert_eq!(fields, ["name", "email"]);
        assert!(input("Guest-1a2b", "g@example.com").validate().is_err());
        assert!(
            input("guests of honour", "g@example.com")
                .validate()
                .is_ok()
        );
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(input("A", &long).validate().is_err());
    }
}
