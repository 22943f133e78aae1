//! Passwords: the rules a new one must meet (NIST SP 800-63B: length, not composition), and
//! argon2id hashing with OWASP's parameters, off the async workers and a bounded number at once.
//!
//! Hashing costs 19 MiB and tens of milliseconds of one core; [`Passwords`] runs at most
//! `concurrency` hashes at a time on the blocking pool, and a request that cannot get a turn
//! within [`QUEUE_WAIT`] is answered 503, so a flood of logins bounds memory and leaves the other
//! requests their workers. An unknown email is checked against a dummy hash, so it costs what a
//! wrong password costs.

use std::{sync::Arc, time::Duration};

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use runtime::FieldError;
use server::ApiError;
use tokio::sync::Semaphore;

/// Fewest characters of a password (NIST SP 800-63B §3.1.1.2).
pub const MIN_LEN: usize = 8;
/// Most characters of a password: well past NIST's 64, short enough to bound the work.
pub const MAX_LEN: usize = 256;
/// How long a login waits for a hashing turn before it is answered 503.
pub const QUEUE_WAIT: Duration = Duration::from_secs(10);

/// Passwords too common to allow, whatever their length (the top of the breach corpora).
const COMMON: &[&str] = &[
    "password",
    "password1",
    "password123",
    "12345678",
    "123456789",
    "1234567890",
    "qwertyuiop",
    "qwerty123",
    "11111111",
    "00000000",
    "iloveyou",
    "sunshine",
    "princess",
    "football",
    "baseball",
    "welcome1",
    "abc12345",
    "letmein1",
    "trustno1",
    "passw0rd",
    "superman",
    "1q2w3e4r",
    "qwertyui",
    "asdfghjk",
    "zaq12wsx",
    "changeme",
    "admin123",
    "administrator",
];

/// Checks a new password; `field` names it in the error.
pub fn check_new(field: &str, password: &str) -> Result<(), FieldError> {
    let length = password.chars().count();
    if length < MIN_LEN {
        return Err(FieldError::new(
            field,
            format!("must be at least {MIN_LEN} characters"),
        ));
    }
    if length > MAX_LEN {
        return Err(FieldError::new(
            field,
            format!("must be at most {MAX_LEN} characters"),
        ));
    }
    if COMMON.contains(&password.to_lowercase().as_str()) {
        return Err(FieldError::new(field, "is too common: choose another"));
    }
    Ok(())
}

/// Hashes and verifies passwords, a bounded number at once.
#[derive(Clone)]
pub struct Passwords {
    /// argon2id, m = 19 MiB, t = 2, p = 1 (OWASP's password storage cheat sheet).
    argon2: Argon2<'static>,
    /// Turns on the blocking pool.
    permits: Arc<Semaphore>,
    /// A hash of a random password: what an unknown account is checked against.
    dummy: Arc<str>,
}

impl Passwords {
    /// At most `concurrency` hashes at once.
    pub fn new(concurrency: usize) -> anyhow::Result<Self> {
        let params = Params::new(19 * 1024, 2, 1, None)
            .map_err(|error| anyhow::anyhow!("argon2 parameters: {error}"))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let dummy = argon2
            .hash_password(auth::random_token()?.as_bytes())
            .map_err(|error| anyhow::anyhow!("hashing the dummy password: {error}"))?
            .to_string();
        Ok(Self {
            argon2,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy: dummy.into(),
        })
    }

    /// The PHC string of `password` (a fresh random salt).
    pub async fn hash(&self, password: String) -> Result<String, ApiError> {
        let argon2 = self.argon2.clone();
        self.run(move || {
            argon2
                .hash_password(password.as_bytes())
                .map(|hash| hash.to_string())
                .map_err(|error| ApiError::Internal(anyhow::anyhow!("hashing: {error}")))
        })
        .await?
    }

    /// Whether `password` matches `hash`; with no hash (no such account, or one without a
    /// password) the dummy hash is checked, so the answer (`false`) takes the same work.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, ApiError> {
        let argon2 = self.argon2.clone();
        let dummy = self.dummy.clone();
        self.run(move || {
            let matches = argon2
                .verify_password(password.as_bytes(), hash.as_deref().unwrap_or(&dummy))
                .is_ok();
            matches && hash.is_some()
        })
        .await
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let permit = tokio::time::timeout(QUEUE_WAIT, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| ApiError::Unavailable("too many sign-ins at once: try again".into()))?
            .map_err(|error| ApiError::Internal(error.into()))?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(|error| ApiError::Internal(error.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_decides_not_composition() {
        assert!(check_new("password", "correct horse battery staple").is_ok());
        assert!(check_new("password", "alllowercase").is_ok());
        assert!(check_new("password", "short").is_err());
        assert!(check_new("password", &"x".repeat(MAX_LEN + 1)).is_err());
        assert!(check_new("password", "Password1").is_err());
        // Characters, not bytes: eight accented letters are eight.
        assert!(check_new("password", "éééééééé").is_ok());
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_only_and_no_hash_never_verifies() {
        let passwords = Passwords::new(2).expect("argon2");
        let hash = passwords
            .hash("a long passphrase".into())
            .await
            .expect("hash");
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(
            passwords
                .verify("a long passphrase".into(), Some(hash.clone()))
                .await
                .expect("ran")
        );
        assert!(
            !passwords
                .verify("another phrase".into(), Some(hash))
                .await
                .expect("ran")
        );
        assert!(
            !passwords
                .verify("a long passphrase".into(), None)
                .await
                .expect("ran")
        );
    }
}
