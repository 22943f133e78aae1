//! What a product is, what clients may send, and what can go wrong with it.

use runtime::FieldError;
use serde::{Deserialize, Serialize};
use server::ApiError;
use utoipa::ToSchema;

/// The highest price accepted, in cents (one trillion minus a cent): every price up to it is
/// exact both as integer cents and as the JSON number the API returns.
pub const MAX_PRICE_CENTS: i64 = 100_000_000_000_000 - 1;

/// A product as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Product {
    /// Assigned by the service.
    pub id: i64,
    /// Display name.
    #[schema(example = "Laptop")]
    pub name: String,
    /// Price, exact to the cent.
    #[schema(example = 999.99, minimum = 0, multiple_of = 0.01)]
    pub price: f64,
    /// RFC 3339, UTC.
    pub created_at: String,
}

/// A product as it is stored: the price in integer cents.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProductRow {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Price in cents.
    pub price_cents: i64,
    /// Creation time.
    pub created_at: String,
}

impl From<ProductRow> for Product {
    fn from(row: ProductRow) -> Self {
        // Exact: an integer below 2^53 divided by 100 rounds to the nearest double of the
        // decimal, which serde_json prints back as that decimal.
        Self {
            id: row.id,
            name: row.name,
            price: row.price_cents as f64 / 100.0,
            created_at: row.created_at,
        }
    }
}

/// The body of `POST /api/products` and `PUT /api/products/{id}`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductInput {
    /// 1–200 characters after trimming.
    #[schema(example = "Laptop", min_length = 1, max_length = 200)]
    pub name: String,
    /// Non-negative, at most 2 decimals.
    #[schema(value_type = f64, example = 999.99, minimum = 0, multiple_of = 0.01)]
    pub price: serde_json::Number,
}

/// A [`ProductInput`] that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidProduct {
    /// Trimmed name.
    pub name: String,
    /// Price in cents.
    pub price_cents: i64,
}

impl ProductInput {
    /// Checks every field; the error lists each one at fault.
    pub fn validate(&self) -> Result<ValidProduct, ProductError> {
        let name = server::check_name("name", &self.name);
        let price = price_cents(&self.price).map_err(|message| FieldError::new("price", message));
        match (name, price) {
            (Ok(name), Ok(price_cents)) => Ok(ValidProduct { name, price_cents }),
            (name, price) => Err(ProductError::Invalid(
                [name.err(), price.err()].into_iter().flatten().collect(),
            )),
        }
    }
}

/// A JSON number as exact integer cents: non-negative, at most 2 decimals, at most
/// [`MAX_PRICE_CENTS`].
pub fn price_cents(number: &serde_json::Number) -> Result<i64, &'static str> {
    if let Some(whole) = number.as_u64() {
        return i64::try_from(whole)
            .ok()
            .and_then(|whole| whole.checked_mul(100))
            .filter(|cents| *cents <= MAX_PRICE_CENTS)
            .ok_or("is too large");
    }
    if number.as_i64().is_some() {
        return Err("must not be negative");
    }
    let value = number.as_f64().ok_or("is not a number")?;
    if !value.is_finite() {
        return Err("is not a number");
    }
    if value < 0.0 {
        return Err("must not be negative");
    }
    // The shortest decimal that round-trips is the number the client wrote (up to 15
    // significant digits, which covers every accepted price).
    let decimal = value.to_string();
    let (whole, fraction) = decimal.split_once('.').unwrap_or((&decimal, ""));
    if fraction.len() > 2 {
        return Err("must have at most 2 decimals");
    }
    let whole: i64 = whole.parse().map_err(|_| "is too large")?;
    let fraction: i64 = format!("{fraction:0<2}")
        .parse()
        .map_err(|_| "is not a number")?;
    whole
        .checked_mul(100)
        .and_then(|cents| cents.checked_add(fraction))
        .filter(|cents| *cents <= MAX_PRICE_CENTS)
        .ok_or("is too large")
}

/// Everything a products handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ProductError {
    /// The input failed validation.
    #[error("invalid product")]
    Invalid(Vec<FieldError>),
    /// The database failed.
    #[error("database error")]
    Database(#[from] sqlx::Error),
}

impl From<ProductError> for ApiError {
    fn from(error: ProductError) -> Self {
        match error {
            ProductError::Invalid(details) => ApiError::validation(details),
            ProductError::Database(cause) => {
                ApiError::Internal(anyhow::Error::new(cause).context("products database"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cents(json: &str) -> Result<i64, &'static str> {
        price_cents(&serde_json::from_str(json).expect("a JSON number"))
    }

    #[test]
    fn prices_become_exact_cents() {
        assert_eq!(cents("999.99"), Ok(99_999));
        assert_eq!(cents("0.1"), Ok(10));
        assert_eq!(cents("1.10"), Ok(110));
        assert_eq!(cents("0"), Ok(0));
        assert_eq!(cents("-0.0"), Ok(0));
        assert_eq!(cents("1e2"), Ok(10_000));
        assert_eq!(cents("999999999999.99"), Ok(MAX_PRICE_CENTS));
    }

    #[test]
    fn bad_prices_are_refused() {
        assert_eq!(cents("1.005"), Err("must have at most 2 decimals"));
        assert_eq!(
            cents("0.30000000000000004"),
            Err("must have at most 2 decimals")
        );
        assert_eq!(cents("-1"), Err("must not be negative"));
        assert_eq!(cents("-0.5"), Err("must not be negative"));
        assert_eq!(cents("1000000000000"), Err("is too large"));
        assert_eq!(cents("1e300"), Err("is too large"));
    }

    #[test]
    fn stored_cents_come_back_as_the_same_decimal() {
        for (stored, json) in [
            (99_999, "999.99"),
            (10, "0.1"),
            (MAX_PRICE_CENTS, "999999999999.99"),
            (1, "0.01"),
        ] {
            let product = Product::from(ProductRow {
                id: 1,
                name: "x".into(),
                price_cents: stored,
                created_at: String::new(),
            });
            assert_eq!(
                serde_json::to_value(product.price)
                    .expect("json")
                    .to_string(),
                json
            );
        }
    }
}
