//! What the benchmarks share: a fresh PostgreSQL database for one run.

use sqlx::{Connection, PgConnection};

/// Environment variable naming an administrative PostgreSQL URL (as for the tests).
pub const POSTGRES_ENV: &str = "RRCT_TEST_POSTGRES_URL";

/// A database created for one benchmark run through an administrative connection.
pub struct FreshPostgres {
    admin: PgConnection,
    name: String,
    pub url: String,
}

impl FreshPostgres {
    /// Create (or re-create) the database `name` next to the one `admin_url` names.
    pub async fn create(admin_url: &str, name: &str) -> anyhow::Result<FreshPostgres> {
        let mut admin = PgConnection::connect(admin_url).await?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
            .execute(&mut admin)
            .await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await?;
        let base = admin_url.rsplit_once('/').map_or(admin_url, |(b, _)| b);
        Ok(FreshPostgres {
            admin,
            url: format!("{base}/{name}"),
            name: name.to_string(),
        })
    }

    /// Drop the database, whatever is still connected to it.
    pub async fn drop_database(mut self) -> anyhow::Result<()> {
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&mut self.admin)
        .await?;
        Ok(())
    }
}
