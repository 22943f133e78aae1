//! Every mutation, its error paths and who may run it, on SQLite and PostgreSQL.

use serde_json::{Value, json};
use testing::TestBackend;

use crate::helpers::{
    GraphqlApi, TestPlatform, admin, create_post, create_user, first_error_code, user,
};

testing::on_both_backends!(
    create_user_goes_to_users_service,
    create_user_errors_come_back_coded,
    create_post_checks_its_author_and_fields,
    update_and_delete_post,
    create_user_needs_an_admin,
    create_post_is_the_callers_own,
    only_the_author_or_an_admin_changes_a_post,
);

const CREATE_USER: &str = "mutation($name: String!, $email: String!) { \
    createUser(name: $name, email: $email) { id name email } }";

const CREATE_POST: &str = "mutation($title: String!, $content: String, $author: ID!) { \
    createPost(title: $title, content: $content, authorId: $author) { id title content } }";

async fn create_user_goes_to_users_service(backend: TestBackend) {
    let platform = TestPlatform::spawn(backend).await;
    let data = platform
        .graphql
        .data_as(
            Some(&admin()),
            CREATE_USER,
            json!({"name": "Carol", "email": "carol@example.com"}),
        )
        .await;
    assert_eq!(data["createUser"]["name"], "Carol");
    assert_eq!(data["createUser"]["email"], "carol@example.com");
    let id = data["createUser"]["id"].as_str().expect("an id");
    let stored = platform
        .users
        .client
        .get(platform.users.url(&format!("/api/users/{id}")))
        .bearer_auth(admin())
        .send()
        .await
        .expect("GET");
    assert_eq!(stored.status(), 200, "the user is in users-service");
    let stored: Value = stored.json().await.expect("user JSON");
    assert_eq!(stored["email"], "carol@example.com");
}

async fn create_user_errors_come_back_coded(backend: TestBackend) {
    let platform = TestPlatform::spawn(backend).await;
    create_user(&platform.users, "Dan", "dan@example.com").await;
    let taken = platform
        .graphql
        .graphql_as(
            Some(&admin()),
            CREATE_USER,
            json!({"name": "Dan 2", "email": "DAN@example.com"}),
        )
        .await;
    assert_eq!(first_error_code(&taken), "CONFLICT", "{taken}");
    assert!(taken["data"].is_null(), "{taken}");

    let invalid = platform
        .graphql
        .graphql_as(
            Some(&admin()),
            CREATE_USER,
            json!({"name": " ", "email": "not-an-address"}),
        )
        .await;
    assert_eq!(first_error_code(&invalid), "BAD_USER_INPUT", "{invalid}");
    let fields: Vec<&str> = invalid["errors"][0]["extensions"]["details"]
        .as_array()
        .expect("details from users-service")
        .iter()
        .filter_map(|detail| detail["field"].as_str())
        .collect();
    assert!(
        fields.contains(&"email") && fields.contains(&"name"),
        "{invalid}"
    );
    let total = platform.users.get("/api/users?count=exact").await;
    assert_eq!(testing::total_count(&total), 1, "nothing else was stored");
}

async fn create_post_checks_its_author_and_fields(backend: TestBackend) {
    let platform = TestPlatform::spawn(backend).await;
    let author = create_user(&platform.users, "Erin", "erin@example.com").await;
    let author_id = author.to_string();
    let token = user(author);
    let as_author = Some(token.as_str());

    let created = platform
        .graphql
        .data_as(
            as_author,
            CREATE_POST,
            json!({"title": "  Trimmed  ", "content": null, "author": author_id}),
        )
        .await;
    assert_eq!(created["createPost"]["title"], "Trimmed");
    assert_eq!(created["createPost"]["content"], Value::Null);

    // Only an admin may name another author, so only an admin can name one that is not there.
    let unknown = platform
        .graphql
        .graphql_as(
            Some(&admin()),
            CREATE_POST,
            json!({"title": "x", "author": "777777"}),
        )
        .await;
    assert_eq!(first_error_code(&unknown), "NOT_FOUND", "{unknown}");

    let cases = [
        json!({"title": "", "author": author_id}),
        json!({"title": "   ", "author": author_id}),
        json!({"title": "t".repeat(301), "author": author_id}),
        json!({"title": "ok", "content": "c".repeat(100_001), "author": author_id}),
        json!({"title": "ok", "author": "not-a-number"}),
    ];
    for variables in cases {
        let body = platform
            .graphql
            .graphql_as(as_author, CREATE_POST, variables.clone())
            .await;
        assert_eq!(
            first_error_code(&body),
            "BAD_USER_INPUT",
            "{variables}: {body}"
        );
    }
    let longest = platform
        .graphql
        .data_as(
            as_author,
            CREATE_POST,
            json!({"title": "t".repeat(300), "content": "c".repeat(100_000), "author": author_id}),
        )
        .await;
    assert_eq!(
        longest["createPost"]["content"].as_str().map(str::len),
        Some(100_000)
    );

    let all = platform
        .graphql
        .data("{ posts { title } }", json!({}))
        .await;
    assert_eq!(
        all["posts"].as_array().map(Vec::len),
        Some(2),
        "only the two valid posts were stored: {all}"
    );
}

async fn update_and_delete_post(backend: TestBackend) {
    let platform = TestPlatform::spawn(backend).await;
    let author = create_user(&platform.users, "Finn", "finn@example.com").await;
    let post = create_post(&platform.graphql, "Draft", author).await;
    let id = post["id"].clone();
    let token = user(author);
    let as_author = Some(token.as_str());

    let update = "mutation($id: ID!, $title: String!, $content: String) { \
        updatePost(id: $id, title: $title, content: $content) { id title content authorId } }";
    let updated = platform
        .graphql
        .data_as(
            as_author,
            update,
            json!({"id": id, "title": "Final", "content": "done"}),
        )
        .await;
    assert_eq!(updated["updatePost"]["title"], "Final");
    assert_eq!(updated["updatePost"]["content"], "done");
    assert_eq!(updated["updatePost"]["authorId"], author.to_string());
    let invalid = platform
        .graphql
        .graphql_as(as_author, update, json!({"id": id, "title": ""}))
        .await;
    assert_eq!(first_error_code(&invalid), "BAD_USER_INPUT");
    let missing = platform
        .graphql
        .graphql_as(as_author, update, json!({"id": "999999", "title": "x"}))
        .await;
    assert_eq!(first_error_code(&missing), "NOT_FOUND");

    let delete = "mutation($id: ID!) { deletePost(id: $id) }";
    let deleted = platform
        .graphql
        .data_as(as_author, delete, json!({"id": id}))
        .await;
    assert_eq!(deleted["deletePost"], true);
    let again = platform
        .graphql
        .graphql_as(as_author, delete, json!({"id": id}))
        .await;
    assert_eq!(first_error_code(&again), "NOT_FOUND");
    let gone = platform
        .graphql
        .data(
            "query($id: ID!) { post(id: $id) { id } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(gone["post"], Value::Null);
}

/// Every error's `extensions.code`, in order.
fn error_codes(body: &Value) -> Vec<&str> {
    body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter_map(|error| error["extensions"]["code"].as_str())
                .collect()
        })
        .unwrap_or_default()
}

async fn create_user_needs_an_admin(backend: TestBackend) {
    let platform = TestPlatform::spawn(backend).await;
    let someone = create_user(&platform.users, "Gil", "gil@example.com").await;
    let variables = json!({"name": "Mallory", "email": "mallory@example.com"});
    let anonymous = platform
        .graphql
        .graphql(CREATE_USER, variables.clone())
        .await;
    assert_eq!(error_codes(&anonymous), ["UNAUTHENTICATED"], "{anonymous}");
    assert!(anonymous["data"].is_null(), "{anonymous}");
    let signed_in = platform
        .graphql
        .graphql_as(Some(&user(someone)), CREATE_USER, variables.clone())
        .await;
    assert_eq!(error_codes(&signed_in), ["FORBIDDEN"], "{signed_in}");
    let total = platform.users.get("/api/users?count=exact").await;
    assert_eq!(
        testing::total_count(&total),
        1,
        "users-service was not asked to create anyone"
    );
    platform
        .graphql
        .data_as(Some(&admin()), CREATE_USER, variables)
        .await;
}

async fn create_post_is_the_callers_own(backend: TestBackend) {
    let platform = TestPlatform::spawn(backend).await;
    let hana = create_user(&platform.users, "Hana", "hana@example.com").await;
    let igor = create_user(&platform.users, "Igor", "igor@example.com").await;
    let as_hana = user(hana);
    let post_as = |author: i64| json!({"title": "Mine", "author": author.to_string()});

    let anonymous = platform.graphql.graphql(CREATE_POST, post_as(hana)).await;
    assert_eq!(error_codes(&anonymous), ["UNAUTHENTICATED"], "{anonymous}");
    let impostor = platform
        .graphql
        .graphql_as(Some(&as_hana), CREATE_POST, post_as(igor))
        .await;
    assert_eq!(error_codes(&impostor), ["FORBIDDEN"], "{impostor}");
    let titles = platform
        .graphql
        .data("{ posts { title } }", json!({}))
        .await;
    assert_eq!(titles["posts"], json!([]), "nothing refused was stored");

    let own = "mutation($title: String!, $author: ID) { \
        createPost(title: $title, authorId: $author) { title authorId author { name } } }";
    let mine = platform
        .graphql
        .data_as(Some(&as_hana), own, post_as(hana))
        .await;
    assert_eq!(mine["createPost"]["authorId"], hana.to_string());
    let defaulted = platform
        .graphql
        .data_as(Some(&as_hana), own, json!({"title": "No author named"}))
        .await;
    assert_eq!(
        defaulted["createPost"]["authorId"],
        hana.to_string(),
        "authorId defaults to the caller"
    );
    let for_igor = platform
        .graphql
        .data_as(Some(&admin()), own, post_as(igor))
        .await;
    assert_eq!(
        for_igor["createPost"]["author"]["name"], "Igor",
        "an admin posts for anyone"
    );
}

async fn only_the_author_or_an_admin_changes_a_post(backend: TestBackend) {
    let platform = TestPlatform::spawn(backend).await;
    let jon = create_user(&platform.users, "Jon", "jon@example.com").await;
    let kim = create_user(&platform.users, "Kim", "kim@example.com").await;
    let id = create_post(&platform.graphql, "Jon's", jon).await["id"].clone();
    let update =
        "mutation($id: ID!, $title: String!) { updatePost(id: $id, title: $title) { title } }";
    let delete = "mutation($id: ID!) { deletePost(id: $id) }";
    let rename = json!({"id": id, "title": "Defaced"});
    let this_post = json!({"id": id});

    for (token, code) in [(None, "UNAUTHENTICATED"), (Some(user(kim)), "FORBIDDEN")] {
        let updated = platform
            .graphql
            .graphql_as(token.as_deref(), update, rename.clone())
            .await;
        assert_eq!(error_codes(&updated), [code], "{updated}");
        let deleted = platform
            .graphql
            .graphql_as(token.as_deref(), delete, this_post.clone())
            .await;
        assert_eq!(error_codes(&deleted), [code], "{deleted}");
    }
    let read = "query($id: ID!) { post(id: $id) { title } }";
    let unchanged = platform.graphql.data(read, this_post.clone()).await;
    assert_eq!(unchanged["post"]["title"], "Jon's", "still Jon's post");

    let by_admin = platform
        .graphql
        .data_as(
            Some(&admin()),
            update,
            json!({"id": id, "title": "Moderated"}),
        )
        .await;
    assert_eq!(by_admin["updatePost"]["title"], "Moderated");
    let by_author = platform
        .graphql
        .data_as(
            Some(&user(jon)),
            update,
            json!({"id": id, "title": "Mine again"}),
        )
        .await;
    assert_eq!(by_author["updatePost"]["title"], "Mine again");
    let deleted = platform
        .graphql
        .data_as(Some(&user(jon)), delete, this_post.clone())
        .await;
    assert_eq!(deleted["deletePost"], true);

    let again = create_post(&platform.graphql, "Another", jon).await["id"].clone();
    let removed = platform
        .graphql
        .data_as(Some(&admin()), delete, json!({"id": again}))
        .await;
    assert_eq!(removed["deletePost"], true, "an admin deletes any post");
}
