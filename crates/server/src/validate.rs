//! Field checks that more than one service makes; each returns the cleaned value or the
//! [`FieldError`] to report in a 422.

use runtime::FieldError;

/// Longest name, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// Characters that change how a name reads without showing (zero-width, joiners, direction
/// overrides and isolates, the byte-order mark, soft hyphens): a name with one can pass for
/// another.
pub fn is_invisible(character: char) -> bool {
    matches!(character,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
        | '\u{FFA0}' | '\u{E0000}'..='\u{E007F}')
}

/// A display name: trimmed, 1–200 characters, no control or invisible characters.
pub fn check_name(field: &str, value: &str) -> Result<String, FieldError> {
    let trimmed = value.trim();
    let length = trimmed.chars().count();
    if length == 0 {
        Err(FieldError::new(field, "must not be empty"))
    } else if length > MAX_NAME_CHARS {
        Err(FieldError::new(
            field,
            format!("must be at most {MAX_NAME_CHARS} characters"),
        ))
    } else if trimmed.chars().any(char::is_control) {
        Err(FieldError::new(
            field,
            "must not contain control characters",
        ))
    } else if trimmed.chars().any(is_invisible) {
        Err(FieldError::new(
            field,
            "must not contain invisible or direction-changing characters",
        ))
    } else {
        Ok(trimmed.to_owned())
    }
}

/// Collects the failures of several checks: all values, or every failure.
pub fn all_valid<T>(
    results: impl IntoIterator<Item = Result<T, FieldError>>,
) -> Result<Vec<T>, Vec<FieldError>> {
    let (values, failures): (Vec<_>, Vec<_>) = results.into_iter().partition(Result::is_ok);
    if failures.is_empty() {
        Ok(values.into_iter().filter_map(Result::ok).collect())
    } else {
        Err(failures.into_iter().filter_map(Result::err).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_invisible_characters_are_refused() {
        for sneaky in [
            "Ali\u{200B}ce",
            "\u{202E}ecilA",
            "Bob\u{FEFF}",
            "A\u{2066}x",
        ] {
            assert!(check_name("name", sneaky).is_err(), "{sneaky:?}");
        }
        assert!(check_name("name", "Zoë Ångström").is_ok());
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(check_name("name", "  Alice "), Ok("Alice".to_owned()));
        assert!(check_name("name", "   ").is_err());
        assert!(check_name("name", &"é".repeat(200)).is_ok());
        assert!(check_name("name", &"é".repeat(201)).is_err());
        assert!(check_name("name", "a\u{0}b").is_err());
    }
}

/// A request body that must be a JSON object: serde would otherwise also read a struct from a
/// JSON array of its fields in order (`["Alice", "a@example.com"]`), which no client means.
#[derive(Debug, Clone)]
pub struct JsonObject<T>(pub T);

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for JsonObject<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(std::marker::PhantomData<T>);

        impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for ObjectVisitor<T> {
            type Value = JsonObject<T>;

            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("a JSON object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(JsonObject)
            }
        }

        deserializer.deserialize_map(ObjectVisitor(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod object_tests {
    use super::JsonObject;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Pair {
        a: u8,
        b: String,
    }

    #[test]
    fn only_objects_are_read() {
        let JsonObject(pair) =
            serde_json::from_str::<JsonObject<Pair>>(r#"{"a": 1, "b": "x"}"#).expect("object");
        assert_eq!(
            pair,
            Pair {
                a: 1,
                b: "x".into()
            }
        );
        let error =
            serde_json::from_str::<JsonObject<Pair>>(r#"[1, "x"]"#).expect_err("array refused");
        assert!(error.is_data(), "{error}");
        assert!(serde_json::from_str::<JsonObject<Pair>>(r#"{"a": 1, "b": "x", "c": 2}"#).is_err());
    }
}
