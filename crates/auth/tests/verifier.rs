//! Every token attack the verifier must refuse, the cache, and the remote JWKS.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use auth::{
    Claims, Jwks, KeySource, Role, SigningKeys, TokenIssuer, Verifier, VerifierSettings,
    VerifyError,
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::Sha256;

fn keys() -> Arc<SigningKeys> {
    Arc::new(SigningKeys::generate().expect("key"))
}

fn issuer(keys: &Arc<SigningKeys>) -> TokenIssuer {
    TokenIssuer::new(
        keys.clone(),
        "platform",
        "platform",
        Duration::from_secs(900),
    )
}

fn verifier(jwks: Jwks) -> Verifier {
    Verifier::new(VerifierSettings::default(), KeySource::Fixed(jwks))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A token with this header and payload JSON, signed with HMAC-SHA256 under `secret`.
fn hs256(header: &str, payload: &str, secret: &[u8]) -> String {
    let signing_input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(signing_input.as_bytes());
    format!("{signing_input}.{}", b64(&mac.finalize().into_bytes()))
}

#[tokio::test]
async fn a_valid_token_proves_its_user_and_roles() {
    let keys = keys();
    let verifier = verifier(keys.jwks());
    let token = issuer(&keys)
        .issue(7, "Test", &[Role::User, Role::Admin])
        .expect("signed");
    let principal = verifier.verify(&token.token).await.expect("valid");
    assert_eq!(principal.user_id, 7);
    assert!(principal.admin);
    assert_eq!(token.expires_in, 900);
    // The second time comes from the cache, with the same answer.
    assert_eq!(verifier.verify(&token.token).await, Ok(principal));
}

#[tokio::test]
async fn alg_none_is_refused() {
    let keys = keys();
    let verifier = verifier(keys.jwks());
    let claims = issuer(&keys).claims(1, "Test", &[Role::Admin]);
    let header = format!(
        r#"{{"alg":"none","typ":"JWT","kid":"{}"}}"#,
        keys.current_kid()
    );
    let token = format!(
        "{}.{}.",
        b64(header.as_bytes()),
        b64(&serde_json::to_vec(&claims).expect("json"))
    );
    assert!(verifier.verify(&token).await.is_err());
}

#[tokio::test]
async fn an_hmac_token_keyed_with_the_public_key_is_refused() {
    let keys = keys();
    let jwks = keys.jwks();
    let verifier = verifier(jwks.clone());
    let claims =
        serde_json::to_string(&issuer(&keys).claims(1, "Test", &[Role::Admin])).expect("json");
    let public = URL_SAFE_NO_PAD.decode(&jwks.keys[0].x).expect("x");
    let header = format!(
        r#"{{"alg":"HS256","typ":"JWT","kid":"{}"}}"#,
        keys.current_kid()
    );
    for secret in [public.as_slice(), jwks.keys[0].x.as_bytes()] {
        let token = hs256(&header, &claims, secret);
        assert_eq!(verifier.verify(&token).await, Err(VerifyError::Algorithm));
    }
}

#[tokio::test]
async fn expired_and_not_yet_valid_tokens_are_refused() {
    let keys = keys();
    let verifier = verifier(keys.jwks());
    let issuer = issuer(&keys);
    let mut expired = issuer.claims(1, "Test", &[Role::User]);
    expired.iat = now() - 3600;
    expired.exp = now() - 120;
    let token = keys.sign(&expired).expect("signed");
    assert_eq!(verifier.verify(&token).await, Err(VerifyError::Expired));
    let mut early = issuer.claims(1, "Test", &[Role::User]);
    early.nbf = Some(now() + 600);
    let token = keys.sign(&early).expect("signed");
    assert_eq!(verifier.verify(&token).await, Err(VerifyError::NotYetValid));
    // Within the leeway, both pass.
    let mut skewed = issuer.claims(1, "Test", &[Role::User]);
    skewed.nbf = Some(now() + 5);
    assert!(
        verifier
            .verify(&keys.sign(&skewed).expect("signed"))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn another_issuer_or_audience_is_refused() {
    let keys = keys();
    let verifier = verifier(keys.jwks());
    let issuer = issuer(&keys);
    let claims = Claims {
        iss: "someone-else".into(),
        ..issuer.claims(1, "Test", &[Role::User])
    };
    assert_eq!(
        verifier.verify(&keys.sign(&claims).expect("signed")).await,
        Err(VerifyError::Issuer)
    );
    let claims = Claims {
        aud: "another-app".into(),
        ..issuer.claims(1, "Test", &[Role::User])
    };
    assert_eq!(
        verifier.verify(&keys.sign(&claims).expect("signed")).await,
        Err(VerifyError::Audience)
    );
}

#[tokio::test]
async fn a_tampered_payload_fails_its_signature() {
    let keys = keys();
    let verifier = verifier(keys.jwks());
    let token = issuer(&keys)
        .issue(5, "Test", &[Role::User])
        .expect("signed")
        .token;
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("b64")).expect("json");
    claims["roles"] = serde_json::json!(["user", "admin"]);
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64(&serde_json::to_vec(&claims).expect("json")),
        parts[2]
    );
    assert_eq!(verifier.verify(&forged).await, Err(VerifyError::Signature));
}

#[tokio::test]
async fn unknown_and_rotated_out_keys_are_refused() {
    let first = keys();
    let stranger = keys();
    let verifier = verifier(first.jwks());
    let strange = issuer(&stranger)
        .issue(1, "Test", &[Role::User])
        .expect("signed")
        .token;
    assert_eq!(
        verifier.verify(&strange).await,
        Err(VerifyError::UnknownKey)
    );

    let old_token = issuer(&first)
        .issue(1, "Test", &[Role::User])
        .expect("signed")
        .token;
    assert!(verifier.verify(&old_token).await.is_ok());
    // One rotation: the previous key still verifies.
    let second = Arc::new(first.rotated().expect("rotated"));
    verifier.set_keys(&second.jwks());
    assert!(verifier.verify(&old_token).await.is_ok());
    // Two rotations: the first key is out, and the remembered token goes with it.
    let third = Arc::new(second.rotated().expect("rotated"));
    verifier.set_keys(&third.jwks());
    assert_eq!(
        verifier.verify(&old_token).await,
        Err(VerifyError::UnknownKey)
    );
    let fresh = issuer(&third)
        .issue(1, "Test", &[Role::User])
        .expect("signed")
        .token;
    assert!(verifier.verify(&fresh).await.is_ok());
}

#[tokio::test]
async fn garbage_is_malformed() {
    let verifier = verifier(keys().jwks());
    for token in ["", "abc", "a.b.c", "eyJhbGciOiJFZERTQSJ9.e30.AAAA"] {
        assert!(verifier.verify(token).await.is_err(), "{token}");
    }
}

/// A JWKS server on a free port answering whatever `jwks` holds, counting requests.
async fn jwks_server(jwks: Arc<std::sync::Mutex<Jwks>>, hits: Arc<AtomicUsize>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!(
        "http://{}/.well-known/jwks.json",
        listener.local_addr().expect("addr")
    );
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let jwks = jwks.clone();
            let hits = hits.clone();
            tokio::spawn(async move {
                let mut buffer = [0_u8; 4096];
                let _ = stream.read(&mut buffer).await;
                hits.fetch_add(1, Ordering::SeqCst);
                let body = serde_json::to_string(&*jwks.lock().expect("lock")).expect("json");
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    url
}

#[tokio::test]
async fn a_remote_jwks_is_fetched_once_and_again_for_an_unknown_kid_at_most_once_per_interval() {
    let first = keys();
    let published = Arc::new(std::sync::Mutex::new(first.jwks()));
    let hits = Arc::new(AtomicUsize::new(0));
    let url = jwks_server(published.clone(), hits.clone()).await;
    let settings = VerifierSettings {
        refetch_interval: Duration::from_millis(300),
        ..VerifierSettings::default()
    };
    let verifier = Verifier::new(settings, KeySource::Remote(url.clone()));

    let token = issuer(&first)
        .issue(3, "Test", &[Role::User])
        .expect("signed")
        .token;
    assert_eq!(verifier.verify(&token).await.map(|p| p.user_id), Ok(3));
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // A rotation at the issuer: the new kid is unknown here, so the JWKS is fetched again.
    let second = Arc::new(first.rotated().expect("rotated"));
    *published.lock().expect("lock") = second.jwks();
    tokio::time::sleep(Duration::from_millis(350)).await;
    let new_token = issuer(&second)
        .issue(3, "Test", &[Role::User])
        .expect("signed")
        .token;
    assert!(verifier.verify(&new_token).await.is_ok());
    assert_eq!(hits.load(Ordering::SeqCst), 2);

    // Tokens naming made-up kids do not make it fetch again within the interval: on a verifier
    // whose interval (an hour) no slow machine can see pass during the test.
    let patient = Verifier::new(
        VerifierSettings {
            refetch_interval: Duration::from_secs(3600),
            ..VerifierSettings::default()
        },
        KeySource::Remote(url),
    );
    assert!(patient.verify(&new_token).await.is_ok());
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    let stranger = keys();
    for _ in 0..20 {
        let strange = issuer(&stranger)
            .issue(3, "Test", &[Role::User])
            .expect("signed")
            .token;
        assert_eq!(patient.verify(&strange).await, Err(VerifyError::UnknownKey));
    }
    assert_eq!(hits.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn an_unreachable_jwks_means_keys_unavailable() {
    let verifier = Verifier::new(
        VerifierSettings::default(),
        KeySource::Remote("http://127.0.0.1:9/.well-known/jwks.json".into()),
    );
    let token = issuer(&keys())
        .issue(1, "Test", &[Role::User])
        .expect("signed")
        .token;
    // The first try, and every token within the refetch interval after it, cannot be checked:
    // unavailable, not "unknown key".
    for _ in 0..3 {
        assert!(matches!(
            verifier.verify(&token).await,
            Err(VerifyError::KeysUnavailable(_))
        ));
    }
}
