//! The first admin: named by the operator (`ADMIN_EMAIL` with `ADMIN_PASSWORD` or
//! `ADMIN_PASSWORD_FILE`), or, for the embedded stack, generated once with a random password.
//! There is never a fixed, known password.

use std::path::Path;

use crate::{
    accounts::Accounts,
    domain::{UserError, UserInput},
    passwords::{self, Passwords},
};

/// The admin to create or promote at start.
#[derive(Clone)]
pub struct AdminAccount {
    /// Its address.
    pub email: String,
    /// Its password (set on every start, so the operator's secret stays the truth).
    pub password: String,
}

impl std::fmt::Debug for AdminAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminAccount")
            .field("email", &self.email)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The address of a generated admin.
pub const GENERATED_ADMIN_EMAIL: &str = "admin@platform.localhost";

/// Creates the admin, or promotes the user with that address and sets its password.
pub async fn ensure_admin(
    accounts: &Accounts,
    passwords: &Passwords,
    admin: &AdminAccount,
) -> anyhow::Result<i64> {
    passwords::check_new("ADMIN_PASSWORD", &admin.password)
        .map_err(|problem| anyhow::anyhow!("ADMIN_PASSWORD {}", problem.message))?;
    let valid = UserInput {
        name: "Admin".into(),
        email: admin.email.clone(),
    }
    .validate()
    .map_err(|_| anyhow::anyhow!("ADMIN_EMAIL is not a valid address"))?;
    let hash = passwords.hash(admin.password.clone()).await?;
    if let Some(found) = accounts.credentials(&valid.email_key).await? {
        accounts
            .set_role(found.account.id, auth::Role::Admin)
            .await?;
        accounts.set_password(found.account.id, &hash).await?;
        return Ok(found.account.id);
    }
    match accounts.create(&valid, &hash, auth::Role::Admin).await {
        Ok(account) => Ok(account.id),
        Err(UserError::EmailTaken(_)) => {
            anyhow::bail!("ADMIN_EMAIL: created by another instance at the same time; restart")
        }
        Err(other) => Err(other.into()),
    }
}

/// When there is no admin yet: creates one with a random password, writes its credentials to
/// `credentials_file` (mode 0600) and returns them, to be shown once. `None` when an admin
/// exists.
pub async fn generate_admin_if_none(
    accounts: &Accounts,
    passwords: &Passwords,
    credentials_file: &Path,
) -> anyhow::Result<Option<AdminAccount>> {
    if accounts.has_admin().await? {
        return Ok(None);
    }
    let admin = AdminAccount {
        email: GENERATED_ADMIN_EMAIL.to_owned(),
        password: auth::random_token()?,
    };
    auth::write_private(
        credentials_file,
        format!("email={}\npassword={}\n", admin.email, admin.password).as_bytes(),
    )?;
    ensure_admin(accounts, passwords, &admin).await?;
    Ok(Some(admin))
}
