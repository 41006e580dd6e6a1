//! The two migration folders describe one schema: after every migration, SQLite and PostgreSQL
//! have the same tables, the same columns (by name and nullability), the same primary keys and
//! the same indexes (columns, uniqueness, partiality, and the name of each index created by
//! `CREATE INDEX`), so the dialect files cannot drift apart unnoticed.

use std::collections::{BTreeMap, BTreeSet};

use rrct::store::Store;
use sqlx::Row;

use crate::support::TestDb;

/// One database's schema, as far as the comparison goes.
#[derive(Debug, Default, PartialEq, Eq)]
struct Schema {
    /// table -> column -> NOT NULL.
    columns: BTreeMap<String, BTreeMap<String, bool>>,
    /// table -> primary key columns in key order.
    primary_keys: BTreeMap<String, Vec<String>>,
    /// (table, name of an explicit index or "(constraint)", columns, unique, partial).
    indexes: BTreeSet<(String, String, Vec<String>, bool, bool)>,
}

/// Differences the dialects are meant to have, each with its reason.
const DIALECT_DIFFERENCES: [(&str, &str, &str); 3] = [
    (
        "events",
        "seq",
        "PostgreSQL numbers events with a bigserial (migration 0005); SQLite uses the rowid",
    ),
    ("events", "events_seq", "the unique index of that column"),
    (
        "events",
        "events_subject",
        "SQLite's carries every column a trial's read of its events takes (migration 0013), \
         which SQLite reads through it subject by subject; PostgreSQL reads them by hashing the \
         trial's allocations over one scan of the events, and keeps the narrow index",
    ),
];

fn is_dialect_difference(table: &str, name: &str) -> bool {
    DIALECT_DIFFERENCES
        .iter()
        .any(|(t, n, _)| *t == table && *n == name)
}

async fn sqlite_schema(store: &Store) -> Schema {
    let pool = store.pool();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         AND name NOT LIKE '_sqlx%' ORDER BY name",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut schema = Schema::default();
    for table in tables {
        let columns = sqlx::query(&format!(
            "SELECT name, \"notnull\" AS nn, pk FROM pragma_table_info('{table}') ORDER BY cid"
        ))
        .fetch_all(pool)
        .await
        .unwrap();
        let mut key: Vec<(i64, String)> = Vec::new();
        let mut cols = BTreeMap::new();
        for c in &columns {
            let name: String = c.get("name");
            let pk: i64 = c.get("pk");
            let not_null: i64 = c.get("nn");
            // A primary key column holds no NULL (PostgreSQL enforces it; rrct never writes one).
            cols.insert(name.clone(), not_null == 1 || pk > 0);
            if pk > 0 {
                key.push((pk, name));
            }
        }
        key.sort();
        schema
            .primary_keys
            .insert(table.clone(), key.into_iter().map(|(_, n)| n).collect());
        schema.columns.insert(table.clone(), cols);
        let indexes = sqlx::query(&format!(
            "SELECT name, \"unique\" AS uniq, origin, partial FROM pragma_index_list('{table}')"
        ))
        .fetch_all(pool)
        .await
        .unwrap();
        for i in &indexes {
            let name: String = i.get("name");
            let origin: String = i.get("origin");
            if origin == "pk" {
                continue;
            }
            let columns: Vec<String> = sqlx::query_scalar(&format!(
                "SELECT name FROM pragma_index_info('{name}') ORDER BY seqno"
            ))
            .fetch_all(pool)
            .await
            .unwrap();
            let unique: i64 = i.get("uniq");
            let partial: i64 = i.get("partial");
            schema.indexes.insert((
                table.clone(),
                if origin == "c" {
                    name
                } else {
                    "(constraint)".into()
                },
                columns,
                unique == 1,
                partial == 1,
            ));
        }
    }
    schema
}

async fn postgres_schema(store: &Store) -> Schema {
    let pool = store.pool();
    let mut schema = Schema::default();
    let columns = sqlx::query(
        "SELECT table_name::text AS t, column_name::text AS c, is_nullable::text AS nullable \
         FROM information_schema.columns WHERE table_schema = 'public' \
         AND table_name NOT LIKE '\\_sqlx%'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for c in &columns {
        let (table, column, nullable): (String, String, String) =
            (c.get("t"), c.get("c"), c.get("nullable"));
        schema
            .columns
            .entry(table)
            .or_default()
            .insert(column, nullable == "NO");
    }
    let indexes = sqlx::query(
        "SELECT t.relname::text AS t, i.relname::text AS i, ix.indisunique::int AS uniq, \
         ix.indisprimary::int AS pk, (ix.indpred IS NOT NULL)::int AS partial, \
         (EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = ix.indexrelid))::int AS constraint_index, \
         array_to_string(ARRAY(SELECT a.attname::text FROM unnest(ix.indkey) WITH ORDINALITY AS k(attnum, ord) \
           JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum ORDER BY k.ord), ',') AS cols \
         FROM pg_index ix JOIN pg_class t ON t.oid = ix.indrelid JOIN pg_class i ON i.oid = ix.indexrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         WHERE n.nspname = 'public' AND t.relname NOT LIKE '\\_sqlx%'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for i in &indexes {
        let table: String = i.get("t");
        let name: String = i.get("i");
        let columns: Vec<String> = i
            .get::<String, _>("cols")
            .split(',')
            .map(str::to_string)
            .collect();
        let flag = |c: &str| i.get::<i32, _>(c) == 1;
        if flag("pk") {
            schema.primary_keys.insert(table, columns);
            continue;
        }
        schema.indexes.insert((
            table,
            if flag("constraint_index") {
                "(constraint)".into()
            } else {
                name
            },
            columns,
            flag("uniq"),
            flag("partial"),
        ));
    }
    for table in schema.columns.keys() {
        schema.primary_keys.entry(table.clone()).or_default();
    }
    schema
}

/// The schema without the differences the dialects are meant to have.
fn comparable(mut schema: Schema) -> Schema {
    for (table, columns) in schema.columns.iter_mut() {
        columns.retain(|c, _| !is_dialect_difference(table, c));
    }
    schema
        .indexes
        .retain(|(table, name, ..)| !is_dialect_difference(table, name));
    schema
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_and_postgres_schemas_match_after_all_migrations() {
    let Some(pg) = TestDb::postgres().await else {
        return;
    };
    let lite = TestDb::sqlite();
    let (lite_store, pg_store) = (
        Store::connect(&lite.url).await.unwrap(),
        Store::connect(&pg.url).await.unwrap(),
    );
    let (lite_schema, pg_schema) = (
        sqlite_schema(&lite_store).await,
        postgres_schema(&pg_store).await,
    );
    // The comparison is not vacuous: every table the engine writes is there.
    for table in [
        "trials",
        "allocations",
        "screening_log",
        "events",
        "audit_log",
    ] {
        assert!(lite_schema.columns.contains_key(table), "{table}");
    }
    assert!(
        pg_schema.columns["events"].contains_key("seq"),
        "the known dialect difference is still there; drop it from the list when it goes"
    );
    let (lite_schema, pg_schema) = (comparable(lite_schema), comparable(pg_schema));
    assert_eq!(
        lite_schema.columns.keys().collect::<Vec<_>>(),
        pg_schema.columns.keys().collect::<Vec<_>>(),
        "tables"
    );
    for (table, columns) in &lite_schema.columns {
        assert_eq!(
            columns, &pg_schema.columns[table],
            "columns of `{table}` (name -> NOT NULL): SQLite left, PostgreSQL right"
        );
    }
    assert_eq!(
        lite_schema.primary_keys, pg_schema.primary_keys,
        "primary keys"
    );
    let only_lite: Vec<_> = lite_schema.indexes.difference(&pg_schema.indexes).collect();
    let only_pg: Vec<_> = pg_schema.indexes.difference(&lite_schema.indexes).collect();
    assert!(
        only_lite.is_empty() && only_pg.is_empty(),
        "indexes only on SQLite: {only_lite:#?}\nindexes only on PostgreSQL: {only_pg:#?}"
    );
    lite_store.close().await;
    pg_store.close().await;
}
