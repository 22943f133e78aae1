//! The products table, through the shared database adapter. Every statement here runs
//! unchanged on SQLite and PostgreSQL.

use db::{Database, placeholders, timestamp_now};
use server::{ListPage, Table, select_page};
use sqlx::AssertSqlSafe;

use crate::domain::{Product, ProductError, ProductRow, ValidProduct};

const COLUMNS: &str = "id, name, price_cents, created_at";

/// Reads and writes products.
#[derive(Clone, Debug)]
pub struct ProductRepository {
    /// The pool.
    database: Database,
}

impl ProductRepository {
    /// A repository over `database` (already migrated).
    pub fn new(database: Database) -> Self {
        Self { database }
    }

    /// Inserts the demo products (Laptop, Smartphone) when the table is empty; `true` when it did.
    pub async fn seed_if_empty(&self) -> anyhow::Result<bool> {
        let mut transaction = self.database.pool().begin().await?;
        let any: Option<i64> = sqlx::query_scalar("SELECT id FROM products LIMIT 1")
            .fetch_optional(&mut *transaction)
            .await?;
        if any.is_some() {
            return Ok(false);
        }
        for (name, price_cents) in [("Laptop", 99_999_i64), ("Smartphone", 69_999)] {
            sqlx::query("INSERT INTO products (name, price_cents, created_at) VALUES ($1, $2, $3)")
                .bind(name)
                .bind(price_cents)
                .bind(timestamp_now())
                .execute(&mut *transaction)
                .await?;
        }
        transaction.commit().await?;
        Ok(true)
    }
}

impl Table for ProductRepository {
    type Item = Product;
    type Valid = ValidProduct;
    type Error = ProductError;

    fn id(item: &Product) -> i64 {
        item.id
    }

    /// One page by id (the primary key's index serves every seek).
    async fn page(&self, page: &ListPage) -> Result<Vec<Product>, ProductError> {
        Ok(
            select_page::<ProductRow>(&self.database, COLUMNS, "products", page)
                .await?
                .into_iter()
                .map(Product::from)
                .collect(),
        )
    }

    /// Every product, counted.
    async fn count(&self) -> Result<i64, ProductError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM products")
            .fetch_one(self.database.pool())
            .await?)
    }

    /// PostgreSQL's statistics.
    async fn estimate(&self) -> Result<Option<i64>, ProductError> {
        Ok(self.database.estimated_rows("products").await?)
    }

    /// The products with these ids that exist, by id.
    async fn by_ids(&self, ids: &[i64]) -> Result<Vec<Product>, ProductError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {COLUMNS} FROM products WHERE id IN ({}) ORDER BY id",
            placeholders(ids.len())
        );
        let mut query = sqlx::query_as::<_, ProductRow>(AssertSqlSafe(sql));
        for id in ids {
            query = query.bind(*id);
        }
        Ok(query
            .fetch_all(self.database.pool())
            .await?
            .into_iter()
            .map(Product::from)
            .collect())
    }

    /// The product with this id, if any.
    async fn find(&self, id: i64) -> Result<Option<Product>, ProductError> {
        Ok(sqlx::query_as::<_, ProductRow>(
            "SELECT id, name, price_cents, created_at FROM products WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.database.pool())
        .await?
        .map(Product::from))
    }

    /// Inserts a product.
    async fn insert(&self, product: &ValidProduct) -> Result<Product, ProductError> {
        Ok(sqlx::query_as::<_, ProductRow>(
            "INSERT INTO products (name, price_cents, created_at) VALUES ($1, $2, $3) \
             RETURNING id, name, price_cents, created_at",
        )
        .bind(&product.name)
        .bind(product.price_cents)
        .bind(timestamp_now())
        .fetch_one(self.database.pool())
        .await?
        .into())
    }

    /// Replaces a product's name and price; `None` when there is no such product.
    async fn update(
        &self,
        id: i64,
        product: &ValidProduct,
    ) -> Result<Option<Product>, ProductError> {
        Ok(sqlx::query_as::<_, ProductRow>(
            "UPDATE products SET name = $1, price_cents = $2 WHERE id = $3 \
             RETURNING id, name, price_cents, created_at",
        )
        .bind(&product.name)
        .bind(product.price_cents)
        .bind(id)
        .fetch_optional(self.database.pool())
        .await?
        .map(Product::from))
    }

    /// Deletes a product; `false` when there was none.
    async fn delete(&self, id: i64) -> Result<bool, ProductError> {
        let result = sqlx::query("DELETE FROM products WHERE id = $1")
            .bind(id)
            .execute(self.database.pool())
            .await?;
        Ok(result.rows_affected() > 0)
    }
}
