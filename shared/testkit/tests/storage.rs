//! The shared storage layer on both stores: connect, migrate (twice, concurrently), write
//! in a transaction, and read back through the portable SQL subset.

use kosha_runtime::db::{Db, DbOptions, Migration};
use kosha_testkit::TestDatabase;

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "things",
        sql: "CREATE TABLE things (id BIGSERIAL_PK, name TEXT NOT NULL UNIQUE, payload BLOB);",
    },
    Migration {
        version: 2,
        name: "flag",
        sql: "ALTER TABLE things ADD COLUMN flag BIGINT NOT NULL DEFAULT 0;",
    },
];

async fn migrations_apply_once_and_sql_is_portable(db: TestDatabase) {
    let first = Db::connect(&db.url, &DbOptions::default()).await.unwrap();
    let second = Db::connect(&db.url, &DbOptions::default()).await.unwrap();

    let (a, b) = tokio::join!(
        first.migrate("test", MIGRATIONS),
        second.migrate("test", MIGRATIONS)
    );
    a.unwrap();
    b.unwrap();

    let mut tx = first.begin().await.unwrap();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO things (name, payload, flag) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind("one")
    .bind(vec![1u8, 2, 3])
    .bind(1_i64)
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let duplicate = sqlx::query("INSERT INTO things (name) VALUES ($1)")
        .bind("one")
        .execute(second.pool())
        .await;
    assert!(kosha_runtime::db::is_unique_violation(
        &duplicate.unwrap_err()
    ));

    let (name, payload, flag): (String, Vec<u8>, i64) = sqlx::query_as(&format!(
        "SELECT name, payload, flag FROM things WHERE id = $1{}",
        second.for_update()
    ))
    .bind(id)
    .fetch_one(second.pool())
    .await
    .unwrap();
    assert_eq!((name.as_str(), payload, flag), ("one", vec![1, 2, 3], 1));
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM schema_migrations")
        .fetch_one(first.pool())
        .await
        .unwrap();
    assert_eq!(applied, 2);
    assert!(first.ping().await);
}

kosha_testkit::store_tests!(migrations_apply_once_and_sql_is_portable);
