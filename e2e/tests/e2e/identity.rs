//! Identity and access on every binary in its own process (real backends; the gateway and each
//! service fetch users-service's keys from its JWKS), with real tokens from `/api/auth`:
//!
//! - the README's "Who may do what" as a table: every route × {anonymous, a user, another
//!   user, an admin}, through the gateway and on the service's own port;
//! - the same for anonymous callers and other users who add `X-User-Id` / `X-User-Roles`
//!   headers (which must change nothing);
//! - forged and damaged tokens (`tokens`), refresh-token reuse, logout and login throttling
//!   (`sessions`), a key rotated out (`tokens`), and no secret in any process's output.

mod sessions;
mod tokens;

use std::time::Duration;

use e2e::{Platform, Session};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::clients::{next_of_type, png, websocket_with};

/// Who makes a request of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// No token.
    Anonymous,
    /// The owner of what the route acts on.
    User,
    /// A signed-in user who owns none of it.
    OtherUser,
    /// An admin.
    Admin,
}

const CALLERS: [Caller; 4] = [
    Caller::Anonymous,
    Caller::User,
    Caller::OtherUser,
    Caller::Admin,
];

/// A route of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    UsersList,
    UserGet,
    UserCreate,
    UserUpdate,
    UserDelete,
    UserPassword,
    AuthMe,
    ProductsList,
    ProductGet,
    ProductCreate,
    ProductUpdate,
    ProductDelete,
    Upload,
    MediaList,
    MediaGetPrivate,
    MediaGetPublic,
    MediaDeletePrivate,
    MediaDeletePublic,
    GraphqlUsers,
    GraphqlEmail,
    GraphqlCreatePost,
    GraphqlCreatePostForUser,
    GraphqlUpdatePost,
    GraphqlDeletePost,
    GraphqlCreateUser,
    GraphqlMe,
    ChatHandshake,
}

/// The matrix: route, what it is, the service whose port it is on, and the expected outcome
/// for anonymous, a user (the owner), another user, an admin.
const MATRIX: [(Route, &str, &str, [&str; 4]); 27] = {
    use Route::*;
    [
        (
            UsersList,
            "GET /api/users",
            "users",
            [
                "200 emails: none",
                "200 emails: user",
                "200 emails: other",
                "200 emails: user+other",
            ],
        ),
        (
            UserGet,
            "GET /api/users/{user}",
            "users",
            ["200 no email", "200 email", "200 no email", "200 email"],
        ),
        (
            UserCreate,
            "POST /api/users",
            "users",
            ["401", "403", "403", "201"],
        ),
        (
            UserUpdate,
            "PUT /api/users/{user}",
            "users",
            ["401", "200", "403", "200"],
        ),
        (
            UserDelete,
            "DELETE /api/users/{user}",
            "users",
            ["401", "204", "403", "204"],
        ),
        (
            UserPassword,
            "PUT /api/users/{user}/password",
            "users",
            ["401", "204", "403", "204"],
        ),
        (
            AuthMe,
            "GET /api/auth/me",
            "users",
            ["401", "200 the caller", "200 the caller", "200 the caller"],
        ),
        (
            ProductsList,
            "GET /api/products",
            "products",
            ["200", "200", "200", "200"],
        ),
        (
            ProductGet,
            "GET /api/products/{id}",
            "products",
            ["200", "200", "200", "200"],
        ),
        (
            ProductCreate,
            "POST /api/products",
            "products",
            ["401", "403", "403", "201"],
        ),
        (
            ProductUpdate,
            "PUT /api/products/{id}",
            "products",
            ["401", "403", "403", "200"],
        ),
        (
            ProductDelete,
            "DELETE /api/products/{id}",
            "products",
            ["401", "403", "403", "204"],
        ),
        (
            Upload,
            "POST /api/upload",
            "media",
            [
                "401",
                "201 owned by the caller, private",
                "201 owned by the caller, private",
                "201 owned by the caller, private",
            ],
        ),
        (
            MediaList,
            "GET /api/media",
            "media",
            [
                "200 lists: user-public",
                "200 lists: user-private+user-public",
                "200 lists: other-private",
                "200 lists: user-private+user-public+other-private",
            ],
        ),
        (
            MediaGetPrivate,
            "GET /api/media/{user's private item} and its url",
            "media",
            ["404", "200, url 200", "404", "200, url 200"],
        ),
        (
            MediaGetPublic,
            "GET /api/media/{user's public item} and its url",
            "media",
            [
                "200, url 200",
                "200, url 200",
                "200, url 200",
                "200, url 200",
            ],
        ),
        (
            MediaDeletePrivate,
            "DELETE /api/media/{user's private item}",
            "media",
            ["401", "204", "404", "204"],
        ),
        (
            MediaDeletePublic,
            "DELETE /api/media/{user's public item}",
            "media",
            ["401", "204", "403", "204"],
        ),
        (
            GraphqlUsers,
            "GraphQL users, posts, products",
            "graphql",
            ["ok", "ok", "ok", "ok"],
        ),
        (
            GraphqlEmail,
            "GraphQL user(id: user) { email }",
            "graphql",
            ["\"\"", "ok", "\"\"", "ok"],
        ),
        (
            GraphqlCreatePost,
            "GraphQL createPost (no authorId)",
            "graphql",
            [
                "UNAUTHENTICATED",
                "ok, by the caller",
                "ok, by the caller",
                "ok, by the caller",
            ],
        ),
        (
            GraphqlCreatePostForUser,
            "GraphQL createPost(authorId: user)",
            "graphql",
            ["UNAUTHENTICATED", "ok", "FORBIDDEN", "ok"],
        ),
        (
            GraphqlUpdatePost,
            "GraphQL updatePost(user's post)",
            "graphql",
            ["UNAUTHENTICATED", "ok", "FORBIDDEN", "ok"],
        ),
        (
            GraphqlDeletePost,
            "GraphQL deletePost(user's post)",
            "graphql",
            ["UNAUTHENTICATED", "ok", "FORBIDDEN", "ok"],
        ),
        (
            GraphqlCreateUser,
            "GraphQL createUser",
            "graphql",
            ["UNAUTHENTICATED", "FORBIDDEN", "FORBIDDEN", "ok"],
        ),
        (
            GraphqlMe,
            "GraphQL me { id }",
            "graphql",
            ["null", "the caller", "the caller", "the caller"],
        ),
        (
            ChatHandshake,
            "chat /chat/ws (token as the bearer subprotocol)",
            "chat",
            [
                "101 as guest",
                "101 as the caller",
                "101 as the caller",
                "101 as the caller",
            ],
        ),
    ]
};

/// The accounts and items the matrix acts on.
pub struct World {
    /// The platform.
    pub platform: Platform,
    /// "A user": owns the first two media items and the post below.
    pub user: Session,
    /// "Another user".
    pub other: Session,
    /// The admin, logged in.
    pub admin: Session,
    /// A product (the admin's).
    pub product: i64,
    /// The user's private and public uploads, and the other user's private one.
    pub media: [String; 3],
    /// A post of the user.
    pub post: String,
}

/// A request's answer: status, `WWW-Authenticate`, JSON body (`Null` when not JSON).
pub struct Answer {
    /// The status.
    pub status: u16,
    /// The `WWW-Authenticate` field.
    pub challenge: String,
    /// The body.
    pub body: Value,
}

/// Sends `method url` with an optional bearer token, extra headers and a JSON body.
pub async fn call(
    method: Method,
    url: &str,
    token: Option<&str>,
    headers: &[(&str, String)],
    body: Option<Value>,
) -> Answer {
    let mut request = reqwest::Client::new().request(method, url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("an answer");
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bytes = response.bytes().await.expect("a body");
    Answer {
        status,
        challenge,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

/// Uploads a small PNG to `base` as the holder of `token` (private unless `visibility`).
pub async fn upload(base: &str, token: Option<&str>, visibility: &str) -> Answer {
    upload_with(base, token, &[], Some(visibility)).await
}

/// Uploads a small PNG to `base`, with extra headers.
async fn upload_with(
    base: &str,
    token: Option<&str>,
    headers: &[(&str, String)],
    visibility: Option<&str>,
) -> Answer {
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(png(16, 16))
            .file_name("matrix.png")
            .mime_str("image/png")
            .expect("a MIME type"),
    );
    let query = visibility.map_or_else(String::new, |v| format!("?visibility={v}"));
    let mut request = reqwest::Client::new()
        .post(format!("{base}/api/upload{query}"))
        .multipart(form);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.expect("an upload answer");
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        challenge: String::new(),
        body,
    }
}

/// A GraphQL request to `base`: the HTTP status (when not 200), the first error's code, or `ok`
/// with the data.
async fn graphql(
    base: &str,
    token: Option<&str>,
    headers: &[(&str, String)],
    query: &str,
    variables: Value,
) -> Result<Value, String> {
    let answer = call(
        Method::POST,
        &format!("{base}/graphql"),
        token,
        headers,
        Some(json!({"query": query, "variables": variables})),
    )
    .await;
    if answer.status != 200 {
        return Err(answer.status.to_string());
    }
    match answer.body["errors"].as_array() {
        Some(errors) if !errors.is_empty() => Err(errors[0]["extensions"]["code"]
            .as_str()
            .map_or_else(|| answer.body.to_string(), str::to_owned)),
        _ => Ok(answer.body["data"].clone()),
    }
}

fn graphql_outcome(result: Result<Value, String>) -> String {
    match result {
        Ok(_) => "ok".to_owned(),
        Err(code) => code,
    }
}

impl World {
    /// Two users, the admin, and what they own.
    pub async fn build(platform: Platform) -> Self {
        let user = platform.sign_up("Ann").await;
        let other = platform.sign_up("Ben").await;
        let admin = platform.admin_session().await;
        let gateway = platform.gateway.clone();
        let product = call(
            Method::POST,
            &format!("{gateway}/api/products"),
            Some(&admin.access_token),
            &[],
            Some(json!({"name": "Matrix", "price": 1.0})),
        )
        .await;
        assert_eq!(product.status, 201, "{}", product.body);
        let mut media = Vec::new();
        for (owner, visibility) in [(&user, "private"), (&user, "public"), (&other, "private")] {
            let uploaded = upload(&gateway, Some(&owner.access_token), visibility).await;
            assert_eq!(uploaded.status, 201, "{}", uploaded.body);
            media.push(
                uploaded.body["file"]["id"]
                    .as_str()
                    .expect("an id")
                    .to_owned(),
            );
        }
        let post = create_post(&gateway, &user.access_token).await;
        Self {
            product: product.body["id"].as_i64().expect("a product id"),
            media: media.try_into().expect("three items"),
            post,
            user,
            other,
            admin,
            platform,
        }
    }

    fn base(&self, port: &str) -> &str {
        &self.platform.services[port]
    }

    fn session(&self, caller: Caller, owner: &Session) -> Option<Session> {
        match caller {
            Caller::Anonymous => None,
            Caller::User => Some(owner.clone()),
            Caller::OtherUser => Some(self.other.clone()),
            Caller::Admin => Some(self.admin.clone()),
        }
    }

    /// What `caller` gets from `route` at `base`, sending `headers` too.
    async fn observe(
        &self,
        route: Route,
        caller: Caller,
        base: &str,
        headers: &[(&str, String)],
    ) -> String {
        use Route::*;
        // Routes that change or end their target get a fresh one, owned by a fresh user.
        let owner = if matches!(route, UserDelete | UserPassword) {
            self.platform.sign_up("Victim").await
        } else {
            self.user.clone()
        };
        let session = self.session(caller, &owner);
        let token = session
            .as_ref()
            .map(|session| session.access_token.as_str());
        let gateway = self.platform.gateway.as_str();
        let user_id = owner.id;
        let status = |answer: Answer| answer.status.to_string();
        match route {
            UsersList | UserGet => {
                let (path, many) = if route == UsersList {
                    ("/api/users?limit=1000".to_owned(), true)
                } else {
                    (format!("/api/users/{user_id}"), false)
                };
                let answer = call(Method::GET, &format!("{base}{path}"), token, headers, None).await;
                if answer.status != 200 {
                    return status(answer);
                }
                let has_email = |id: i64| {
                    let rows = if many {
                        answer.body.as_array().cloned().unwrap_or_default()
                    } else {
                        vec![answer.body.clone()]
                    };
                    rows.iter()
                        .any(|row| row["id"] == id && row["email"].is_string())
                };
                if many {
                    let seen: Vec<&str> = [(user_id, "user"), (self.other.id, "other")]
                        .into_iter()
                        .filter(|(id, _)| has_email(*id))
                        .map(|(_, name)| name)
                        .collect();
                    format!(
                        "200 emails: {}",
                        if seen.is_empty() {
                            "none".to_owned()
                        } else {
                            seen.join("+")
                        }
                    )
                } else if has_email(user_id) {
                    "200 email".to_owned()
                } else {
                    "200 no email".to_owned()
                }
            }
            UserCreate => status(
                call(
                    Method::POST,
                    &format!("{base}/api/users"),
                    token,
                    headers,
                    Some(json!({"name": "Created", "email": unique_email("created")})),
                )
                .await,
            ),
            UserUpdate => status(
                call(
                    Method::PUT,
                    &format!("{base}/api/users/{user_id}"),
                    token,
                    headers,
                    Some(json!({"name": owner.name, "email": owner.email})),
                )
                .await,
            ),
            UserDelete => status(
                call(
                    Method::DELETE,
                    &format!("{base}/api/users/{user_id}"),
                    token,
                    headers,
                    None,
                )
                .await,
            ),
            UserPassword => status(
                call(
                    Method::PUT,
                    &format!("{base}/api/users/{user_id}/password"),
                    token,
                    headers,
                    Some(json!({
                        "password": "a brand new passphrase",
                        "current_password": owner.password,
                    })),
                )
                .await,
            ),
            AuthMe => {
                let answer = call(
                    Method::GET,
                    &format!("{base}/api/auth/me"),
                    token,
                    headers,
                    None,
                )
                .await;
                match &session {
                    Some(session) if answer.status == 200 && answer.body["id"] == session.id => {
                        "200 the caller".to_owned()
                    }
                    _ if answer.status != 200 => status(answer),
                    _ => format!("{} {}", answer.status, answer.body),
                }
            }
            ProductsList | ProductGet => {
                let path = if route == ProductsList {
                    "/api/products".to_owned()
                } else {
                    format!("/api/products/{}", self.product)
                };
                status(call(Method::GET, &format!("{base}{path}"), token, headers, None).await)
            }
            ProductCreate => status(
                call(
                    Method::POST,
                    &format!("{base}/api/products"),
                    token,
                    headers,
                    Some(json!({"name": "Created", "price": 2.5})),
                )
                .await,
            ),
            ProductUpdate => status(
                call(
                    Method::PUT,
                    &format!("{base}/api/products/{}", self.product),
                    token,
                    headers,
                    Some(json!({"name": "Matrix", "price": 1.0})),
                )
                .await,
            ),
            ProductDelete => {
                let created = call(
                    Method::POST,
                    &format!("{gateway}/api/products"),
                    Some(&self.admin.access_token),
                    &[],
                    Some(json!({"name": "Doomed", "price": 3.0})),
                )
                .await;
                let id = created.body["id"].as_i64().expect("a product id");
                status(
                    call(
                        Method::DELETE,
                        &format!("{base}/api/products/{id}"),
                        token,
                        headers,
                        None,
                    )
                    .await,
                )
            }
            Upload => {
                let answer = upload_with(base, token, headers, None).await;
                match &session {
                    Some(session)
                        if answer.status == 201
                            && answer.body["file"]["owner_id"] == session.id
                            && answer.body["file"]["visibility"] == "private" =>
                    {
                        "201 owned by the caller, private".to_owned()
                    }
                    _ if answer.status != 201 => status(answer),
                    _ => format!("{} {}", answer.status, answer.body),
                }
            }
            MediaList => {
                let answer = call(
                    Method::GET,
                    &format!("{base}/api/media?limit=1000"),
                    token,
                    headers,
                    None,
                )
                .await;
                if answer.status != 200 {
                    return status(answer);
                }
                let listed: Vec<&str> = self
                    .media
                    .iter()
                    .zip(["user-private", "user-public", "other-private"])
                    .filter(|(id, _)| {
                        answer
                            .body
                            .as_array()
                            .is_some_and(|items| items.iter().any(|item| item["id"] == **id))
                    })
                    .map(|(_, name)| name)
                    .collect();
                format!("200 lists: {}", listed.join("+"))
            }
            MediaGetPrivate | MediaGetPublic => {
                let id = &self.media[if route == MediaGetPrivate { 0 } else { 1 }];
                let answer = call(
                    Method::GET,
                    &format!("{base}/api/media/{id}"),
                    token,
                    headers,
                    None,
                )
                .await;
                if answer.status != 200 {
                    return status(answer);
                }
                let Some(url) = answer.body["url"].as_str() else {
                    return format!("200 without a url: {}", answer.body);
                };
                let url = if url.starts_with("http") {
                    url.to_owned()
                } else {
                    format!("{gateway}{url}")
                };
                let download = reqwest::get(&url).await.expect("the download answers");
                format!("200, url {}", download.status().as_u16())
            }
            MediaDeletePrivate | MediaDeletePublic => {
                let visibility = if route == MediaDeletePrivate {
                    "private"
                } else {
                    "public"
                };
                let uploaded = upload(gateway, Some(&owner.access_token), visibility).await;
                let id = uploaded.body["file"]["id"].as_str().expect("an id");
                status(
                    call(
                        Method::DELETE,
                        &format!("{base}/api/media/{id}"),
                        token,
                        headers,
                        None,
                    )
                    .await,
                )
            }
            GraphqlUsers => graphql_outcome(
                graphql(
                    base,
                    token,
                    headers,
                    "{ users { id name } posts { id title } products { id name } }",
                    json!({}),
                )
                .await,
            ),
            GraphqlEmail => {
                let result = graphql(
                    base,
                    token,
                    headers,
                    "query($id: ID!) { user(id: $id) { name email } }",
                    json!({"id": user_id.to_string()}),
                )
                .await;
                match result {
                    Ok(data) if data["user"]["email"] == owner.email => "ok".to_owned(),
                    Ok(data) if data["user"]["email"] == "" => "\"\"".to_owned(),
                    Ok(data) => format!("no error but {data}"),
                    Err(code) => code,
                }
            }
            GraphqlCreatePost => {
                let result = graphql(
                    base,
                    token,
                    headers,
                    "mutation { createPost(title: \"Mine\") { id author { id } } }",
                    json!({}),
                )
                .await;
                match (result, &session) {
                    (Ok(data), Some(session))
                        if data["createPost"]["author"]["id"].as_str()
                            == Some(session.id.to_string().as_str()) =>
                    {
                        "ok, by the caller".to_owned()
                    }
                    (Ok(data), _) => format!("ok, but {data}"),
                    (Err(code), _) => code,
                }
            }
            GraphqlCreatePostForUser => graphql_outcome(
                graphql(
                    base,
                    token,
                    headers,
                    "mutation($a: ID!) { createPost(title: \"For the user\", authorId: $a) { id } }",
                    json!({"a": user_id.to_string()}),
                )
                .await,
            ),
            GraphqlUpdatePost => graphql_outcome(
                graphql(
                    base,
                    token,
                    headers,
                    "mutation($id: ID!) { updatePost(id: $id, title: \"Edited\") { id } }",
                    json!({"id": self.post}),
                )
                .await,
            ),
            GraphqlDeletePost => {
                let post = create_post(gateway, &owner.access_token).await;
                graphql_outcome(
                    graphql(
                        base,
                        token,
                        headers,
                        "mutation($id: ID!) { deletePost(id: $id) }",
                        json!({"id": post}),
                    )
                    .await,
                )
            }
            GraphqlCreateUser => graphql_outcome(
                graphql(
                    base,
                    token,
                    headers,
                    "mutation($e: String!) { createUser(name: \"Made\", email: $e) { id } }",
                    json!({"e": unique_email("made")}),
                )
                .await,
            ),
            GraphqlMe => {
                match graphql(base, token, headers, "{ me { id } }", json!({})).await {
                    Ok(data) if data["me"].is_null() => "null".to_owned(),
                    Ok(data) => match &session {
                        Some(session)
                            if data["me"]["id"].as_str() == Some(session.id.to_string().as_str()) =>
                        {
                            "the caller".to_owned()
                        }
                        _ => format!("someone else: {data}"),
                    },
                    Err(code) => code,
                }
            }
            ChatHandshake => {
                let mut sent = headers.to_vec();
                if let Some(token) = token {
                    sent.push(("sec-websocket-protocol", format!("bearer, {token}")));
                }
                match websocket_with(base, "/chat/ws?room=matrix&name=impostor", &sent).await {
                    Err(status) => status.to_string(),
                    Ok(mut socket) => {
                        let welcome =
                            next_of_type(&mut socket, "welcome", Duration::from_secs(5)).await;
                        let name = welcome["user"].as_str().unwrap_or_default();
                        let _ = socket.close(None).await;
                        match &session {
                            Some(session) if name == session.name => {
                                "101 as the caller".to_owned()
                            }
                            None if name.starts_with("guest-") => "101 as guest".to_owned(),
                            _ => format!("101 as {name:?}"),
                        }
                    }
                }
            }
        }
    }

    /// Runs the matrix for `callers` on the gateway and each route's own port, sending
    /// `headers` too; every mismatch, one line each naming route, caller and port.
    async fn matrix(&self, callers: &[Caller], headers: &[(&str, String)]) -> Vec<String> {
        let mut mismatches = Vec::new();
        for (route, name, port, expected) in MATRIX {
            for (caller, expected) in CALLERS.iter().zip(expected) {
                if !callers.contains(caller) {
                    continue;
                }
                for (via, base) in [("gateway", self.base("gateway")), (port, self.base(port))] {
                    let seen = self.observe(route, *caller, base, headers).await;
                    if seen != expected {
                        mismatches.push(format!(
                            "{name} as {caller:?} via {via} ({base}): expected {expected}, got {seen}"
                        ));
                    }
                }
            }
        }
        mismatches
    }
}

/// A post by the holder of `token`, created through `base`; its id.
async fn create_post(base: &str, token: &str) -> String {
    let data = graphql(
        base,
        Some(token),
        &[],
        "mutation { createPost(title: \"Owned\") { id } }",
        json!({}),
    )
    .await
    .unwrap_or_else(|code| panic!("a post is created: {code}"));
    data["createPost"]["id"]
        .as_str()
        .expect("a post id")
        .to_owned()
}

/// A fresh email address.
pub fn unique_email(prefix: &str) -> String {
    format!("{prefix}-{}@e2e.example.com", uuid::Uuid::new_v4().simple())
}

/// Asserts a 401 `unauthorized` with `error="invalid_token"` in `WWW-Authenticate`.
pub fn assert_invalid_token(answer: &Answer, label: &str) {
    assert_eq!(
        (answer.status, answer.body["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED.as_u16(), Some("unauthorized")),
        "{label}: {}",
        answer.body
    );
    assert!(
        answer.challenge.contains("error=\"invalid_token\""),
        "{label}: WWW-Authenticate {:?}",
        answer.challenge
    );
}

#[tokio::test]
async fn identity_and_access_on_real_backends() {
    testing::skip_unless!(Postgres, Redis, RabbitMq, S3sFs);
    let s3 = crate::journey::S3::start().await;
    // Failure budgets counted over an hour: the throttling flow (sessions) spends one and sees
    // the 429, with no cell coming back however long its argon2 hashes take.
    let tuning = e2e::Tuning {
        env: vec![(
            "users".to_owned(),
            "LOGIN_FAILURES_PERIOD_SECS".to_owned(),
            "3600".to_owned(),
        )],
        ..e2e::Tuning::default()
    };
    let platform = Platform::processes_tuned(&s3.backends, &tuning)
        .await
        .expect("every process starts");
    let mut world = World::build(platform).await;

    let mismatches = world.matrix(&CALLERS, &[]).await;
    assert!(
        mismatches.is_empty(),
        "the access rules (README, \"Who may do what\") do not hold:\n{}",
        mismatches.join("\n")
    );

    // Identity headers a client makes up name nobody: anonymous callers stay anonymous and
    // other users stay themselves, on every route and port.
    let spoofed = [
        ("x-user-id", world.admin.id.to_string()),
        ("x-user-roles", "admin".to_owned()),
    ];
    let mismatches = world
        .matrix(&[Caller::Anonymous, Caller::OtherUser], &spoofed)
        .await;
    assert!(
        mismatches.is_empty(),
        "X-User-Id / X-User-Roles changed an answer:\n{}",
        mismatches.join("\n")
    );

    tokens::attacks(&world).await;
    let secrets = sessions::refresh_logout_and_throttling(&world).await;
    tokens::a_key_rotated_out_stops_verifying(&mut world).await;
    sessions::no_secret_in_any_output(&world, secrets);

    world
        .platform
        .stop(Duration::from_secs(15))
        .expect("every process exits 0 on SIGTERM");
}
