//! What one operation may spend while it runs: calls to users-service and products-service,
//! and bytes of response. The static limits (aliases, root fields, depth, complexity) are
//! [`crate::limits`]'s; these two cannot be known before the resolvers run, so each operation
//! (each event of a subscription) carries an [`OperationBudget`] that its upstream calls and
//! resolved fields draw from, and that refuses the draw that goes over.

use std::sync::atomic::{AtomicUsize, Ordering};

/// The budget of one operation, or of one event of a subscription (reset between events).
#[derive(Debug)]
pub struct OperationBudget {
    /// Calls to users-service and products-service allowed.
    max_upstream_calls: usize,
    /// Calls made (or refused) so far.
    upstream_calls: AtomicUsize,
    /// Response bytes allowed (JSON, estimated per resolved field).
    max_response_bytes: usize,
    /// Response bytes counted so far.
    response_bytes: AtomicUsize,
}

/// A draw the budget refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Overdrawn {
    /// One call more than the operation may make.
    #[error("this operation may make at most {0} calls to other services")]
    UpstreamCalls(usize),
    /// The response would be larger than allowed.
    #[error("the response would be over {0} bytes: ask for fewer fields or smaller pages")]
    ResponseBytes(usize),
}

impl OperationBudget {
    /// A full budget.
    pub fn new(max_upstream_calls: usize, max_response_bytes: usize) -> Self {
        Self {
            max_upstream_calls,
            upstream_calls: AtomicUsize::new(0),
            max_response_bytes,
            response_bytes: AtomicUsize::new(0),
        }
    }

    /// Takes one upstream call; refused once the operation has made its allowance.
    pub fn take_upstream_call(&self) -> Result<(), Overdrawn> {
        let made = self.upstream_calls.fetch_add(1, Ordering::Relaxed);
        if made < self.max_upstream_calls {
            Ok(())
        } else {
            Err(Overdrawn::UpstreamCalls(self.max_upstream_calls))
        }
    }

    /// Adds `bytes` to the response; refused (and kept refused) once the total is over.
    pub fn add_response_bytes(&self, bytes: usize) -> Result<(), Overdrawn> {
        let total = self
            .response_bytes
            .fetch_add(bytes, Ordering::Relaxed)
            .saturating_add(bytes);
        if total > self.max_response_bytes {
            Err(Overdrawn::ResponseBytes(self.max_response_bytes))
        } else {
            Ok(())
        }
    }

    /// Whether the response has gone over its bytes.
    pub fn response_overdrawn(&self) -> Option<Overdrawn> {
        (self.response_bytes.load(Ordering::Relaxed) > self.max_response_bytes)
            .then_some(Overdrawn::ResponseBytes(self.max_response_bytes))
    }

    /// Refills the budget: the next event of a subscription spends its own.
    pub fn reset(&self) {
        self.upstream_calls.store(0, Ordering::Relaxed);
        self.response_bytes.store(0, Ordering::Relaxed);
    }
}

/// The bytes a resolved field adds to the JSON response: its key, and its value without the
/// fields of objects in it (each of those is counted when it resolves). Strings count as
/// serialized (escapes included), so the estimate is never below what is sent for leaves.
pub fn field_bytes(key: &str, value: &async_graphql::Value) -> usize {
    // `"key":` and a separating comma.
    json_string_len(key) + 2 + shallow_value_bytes(value)
}

fn shallow_value_bytes(value: &async_graphql::Value) -> usize {
    use async_graphql::Value;
    match value {
        Value::Null => 4,
        Value::Boolean(_) => 5,
        Value::Number(number) => number.to_string().len(),
        Value::String(text) => json_string_len(text),
        Value::Enum(name) => json_string_len(name.as_str()),
        Value::Binary(bytes) => bytes.len().saturating_mul(4),
        Value::List(items) => items
            .iter()
            .map(|item| shallow_value_bytes(item) + 1)
            .sum::<usize>()
            .saturating_add(2),
        // `{}`: the fields are counted by their own resolution.
        Value::Object(_) => 2,
    }
}

/// The length of `text` as a JSON string, quotes and escapes included.
fn json_string_len(text: &str) -> usize {
    2 + text
        .chars()
        .map(|character| match character {
            '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
            control if u32::from(control) < 0x20 => 6,
            other => other.len_utf8(),
        })
        .sum::<usize>()
}

#[cfg(test)]
mod tests {
    use async_graphql::{Name, Value};

    use super::*;

    #[test]
    fn upstream_calls_are_refused_past_the_allowance_until_reset() {
        let budget = OperationBudget::new(2, 1000);
        assert_eq!(budget.take_upstream_call(), Ok(()));
        assert_eq!(budget.take_upstream_call(), Ok(()));
        assert_eq!(
            budget.take_upstream_call(),
            Err(Overdrawn::UpstreamCalls(2))
        );
        budget.reset();
        assert_eq!(budget.take_upstream_call(), Ok(()));
    }

    #[test]
    fn response_bytes_stay_refused_once_over() {
        let budget = OperationBudget::new(1, 10);
        assert_eq!(budget.add_response_bytes(10), Ok(()));
        assert_eq!(budget.response_overdrawn(), None);
        assert_eq!(
            budget.add_response_bytes(1),
            Err(Overdrawn::ResponseBytes(10))
        );
        assert_eq!(
            budget.response_overdrawn(),
            Some(Overdrawn::ResponseBytes(10))
        );
        budget.reset();
        assert_eq!(budget.response_overdrawn(), None);
    }

    #[test]
    fn field_bytes_match_the_json_of_leaves() {
        for (key, value) in [
            (
                "title",
                Value::String("a \"quoted\"\n line\u{1}".to_owned()),
            ),
            ("id", Value::from(12345)),
            ("ok", Value::Boolean(true)),
            ("none", Value::Null),
            (
                "tags",
                Value::List(vec![Value::from("x"), Value::from("é")]),
            ),
        ] {
            let json =
                serde_json::json!({ key: value.clone().into_json().expect("JSON") }).to_string();
            // The JSON less its braces is `"key":value`; the estimate adds a comma.
            let exact = json.len() - 2 + 1;
            let estimate = field_bytes(key, &value);
            assert!(
                (exact..=exact + 1).contains(&estimate),
                "{key}: {estimate} for {json}"
            );
        }
        let object = Value::Object([(Name::new("a"), Value::from("long text"))].into());
        assert_eq!(field_bytes("o", &object), 3 + 2 + 2);
    }
}
