//! [`validate_key`]: which object keys are accepted.

use crate::StoreError;

/// Refuses keys that are not plain relative paths: empty, over 1024 bytes, absolute, with
/// `\`, control characters, or an empty, `.`-leading (`.`, `..`, `.staging`) component.
pub fn validate_key(key: &str) -> Result<(), StoreError> {
    let bad = key.is_empty()
        || key.len() > 1024
        || key.contains('\\')
        || key.chars().any(char::is_control)
        || key
            .split('/')
            .any(|component| component.is_empty() || component.starts_with('.'));
    if bad {
        Err(StoreError::InvalidKey(key.to_owned()))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_must_be_plain_relative_paths() {
        for good in ["a/b.png", "0b6e/cat picture.png", "x"] {
            assert!(validate_key(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a//b",
            "a/",
            ".staging/x",
            "a\\b",
            "a\0b",
            "a/\nb",
        ] {
            assert!(validate_key(bad).is_err(), "{bad:?}");
        }
    }
}
