//! A GraphQL request read from HTTP: a GET's query string (`query`, `operationName`,
//! `variables`, `extensions`), a POST's JSON body (read up to a limit), and the content type a
//! POST must have. What is malformed is refused here with the reason, before anything runs.

use actix_web::web;
use futures_util::StreamExt;
use serde_json::json;

use super::negotiation::JSON;

/// Whether `Content-Type` is `application/json` (parameters such as `charset` aside).
pub(crate) fn is_json_content(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case(JSON))
}

/// Why a POST body could not be read.
pub(crate) enum BodyError {
    /// It is over the limit.
    TooLarge,
    /// The connection failed while it came.
    Broken(String),
}

/// The body, up to `limit` bytes.
pub(crate) async fn read_body(
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::BytesMut, BodyError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|error| BodyError::Broken(error.to_string()))?;
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The parameters of a GET request, by the GraphQL-over-HTTP names (`operationName`, where
/// async-graphql's own parser reads `operation_name`).
#[derive(serde::Deserialize)]
struct GetParameters {
    query: String,
    #[serde(rename = "operationName", default)]
    operation_name: Option<String>,
    #[serde(default)]
    variables: Option<String>,
    #[serde(default)]
    extensions: Option<String>,
}

/// A GET request's query string: `query`, optional `operationName`, and `variables` and
/// `extensions` as JSON objects.
pub(crate) fn parse_query_string(query_string: &str) -> Result<async_graphql::Request, String> {
    let parameters = web::Query::<GetParameters>::from_query(query_string)
        .map_err(|error| error.to_string())?
        .into_inner();
    let object = |name: &str, text: Option<String>| -> Result<serde_json::Value, String> {
        match text {
            None => Ok(json!({})),
            Some(text) => match serde_json::from_str::<serde_json::Value>(&text) {
                Ok(value @ (serde_json::Value::Object(_) | serde_json::Value::Null)) => Ok(value),
                Ok(_) => Err(format!("`{name}` must be a JSON object")),
                Err(error) => Err(format!("`{name}` is not valid JSON: {error}")),
            },
        }
    };
    let variables = object("variables", parameters.variables)?;
    let extensions = object("extensions", parameters.extensions)?;
    let mut request = async_graphql::Request::new(parameters.query)
        .variables(async_graphql::Variables::from_json(variables));
    request.operation_name = parameters.operation_name;
    request.extensions = serde_json::from_value(extensions).unwrap_or_default();
    Ok(request)
}

/// A POST body: a JSON object with a string `query`, optional `operationName`, `variables`
/// (an object) and `extensions`.
pub(crate) fn parse_post_body(body: &[u8]) -> Result<async_graphql::Request, String> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|error| format!("the body is not valid JSON: {error}"))?;
    let object = value
        .as_object()
        .ok_or("the body must be a JSON object with a \"query\"")?;
    match object.get("query") {
        Some(serde_json::Value::String(_)) => {}
        Some(_) => return Err("\"query\" must be a string".to_owned()),
        None => return Err("the body has no \"query\"".to_owned()),
    }
    if let Some(variables) = object.get("variables")
        && !(variables.is_object() || variables.is_null())
    {
        return Err("\"variables\" must be an object".to_owned());
    }
    if let Some(name) = object.get("operationName")
        && !(name.is_string() || name.is_null())
    {
        return Err("\"operationName\" must be a string".to_owned());
    }
    serde_json::from_value(value).map_err(|error| format!("malformed GraphQL request: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_parameters_use_the_specification_names() {
        let request = parse_query_string(
            "query=query%20A%20%7B%20a%20%7D&operationName=A&variables=%7B%22x%22%3A1%7D",
        )
        .expect("a request");
        assert_eq!(request.query, "query A { a }");
        assert_eq!(request.operation_name.as_deref(), Some("A"));
        assert_eq!(
            request.variables.into_value().into_json().ok(),
            Some(serde_json::json!({"x": 1}))
        );
        assert!(parse_query_string("query=%7Ba%7D&variables=%5B%5D").is_err());
        assert!(parse_query_string("query=%7Ba%7D&variables=nope").is_err());
        assert!(parse_query_string("operationName=A").is_err());
    }

    #[test]
    fn post_bodies_are_checked() {
        assert!(parse_post_body(br#"{"query":"{ users { id } }"}"#).is_ok());
        assert!(parse_post_body(br#"{"query":"{ a }","variables":null}"#).is_ok());
        assert!(parse_post_body(b"{").is_err());
        assert!(parse_post_body(b"[]").is_err());
        assert!(parse_post_body(br#"{"query":1}"#).is_err());
        assert!(parse_post_body(br#"{"variables":{}}"#).is_err());
        assert!(parse_post_body(br#"{"query":"{a}","variables":[]}"#).is_err());
    }
}
