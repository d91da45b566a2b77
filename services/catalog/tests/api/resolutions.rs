//! Resolved listings kept in memory never outlive a change: on the replica that made it at
//! once, on the others as soon as they hear of it, and everywhere when hearing breaks.

use std::time::Duration;

use kosha_proto::kosha::catalog::v1 as pb;
use kosha_runtime::changes::{LISTENER_NAME, QUIET_CHECK};
use kosha_runtime::db::{Db, DbOptions};
use kosha_testkit::{Store, TestDatabase};

use crate::helpers::{TestApp, spawn_app};

/// How long another replica may take to hear a change in these tests.
const HEARING_TIME: Duration = Duration::from_secs(10);

/// The catalog on `db` with client `acme`, channel AMAZON, products K-1 to K-3 and the
/// listing A-1 → K-1; the first replica arranges, later ones only join.
async fn replica(db: &TestDatabase, first: bool) -> TestApp {
    let mut app = spawn_app(db).await;
    app.mounted.listening().await;
    if first {
        app.create_client("acme").await;
        app.create_channel("AMAZON", pb::ChannelKind::Marketplace)
            .await;
        for sku in ["K-1", "K-2", "K-3"] {
            app.create_product("acme", sku).await;
        }
        map(&mut app, "A-1", "K-1").await;
    }
    app
}

async fn map(app: &mut TestApp, marketplace_sku: &str, sku: &str) {
    let request = pb::CreateListingRequest {
        listing: Some(pb::Listing {
            client_id: "acme".into(),
            channel: "AMAZON".into(),
            marketplace_sku: marketplace_sku.into(),
            sku: sku.into(),
            update_time: None,
        }),
    };
    app.catalog.create_listing(request).await.unwrap();
}

async fn set_active(app: &mut TestApp, sku: &str, active: bool) {
    let (client_id, sku) = ("acme".to_string(), sku.to_string());
    if active {
        let request = pb::EnableProductRequest { client_id, sku };
        app.catalog.enable_product(request).await.unwrap();
    } else {
        let request = pb::DisableProductRequest { client_id, sku };
        app.catalog.disable_product(request).await.unwrap();
    }
}

/// What A-1 resolves to: the client SKU and whether it is active, or `None` when unknown.
async fn resolve_a1(app: &mut TestApp) -> Option<(String, bool)> {
    let request = pb::ResolveListingsRequest {
        client_id: "acme".into(),
        channel: "AMAZON".into(),
        marketplace_skus: vec!["A-1".into()],
    };
    let response = app.catalog.resolve_listings(request).await.unwrap();
    let resolved = response.into_inner().resolved;
    resolved
        .first()
        .map(|found| (found.sku.clone(), found.active))
}

/// Resolves A-1 on `app` until it gives `expected`, for at most [`HEARING_TIME`].
async fn until_resolved(app: &mut TestApp, expected: Option<(&str, bool)>, why: &str) {
    let expected = expected.map(|(sku, active)| (sku.to_string(), active));
    let deadline = tokio::time::Instant::now() + HEARING_TIME;
    loop {
        let got = resolve_a1(app).await;
        if got == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{why}: A-1 still resolves to {got:?}, not {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Resolves A-1 on `app` until the replica keeps what it answers, which shows when a
/// remapping that nobody hears goes unseen: to whichever of `skus` it did not answer.
/// Announcements of earlier writes may still arrive and make the replica forget, so it tries
/// again until then. Answers the SKU A-1 is then mapped to in the database.
async fn until_kept(app: &mut TestApp, db: &TestDatabase, skus: [&str; 2]) -> String {
    let deadline = tokio::time::Instant::now() + HEARING_TIME;
    loop {
        let first = resolve_a1(app).await;
        let answered = first.as_ref().map(|(sku, _)| sku.as_str());
        let unheard = if answered == Some(skus[0]) {
            skus[1]
        } else {
            skus[0]
        };
        remap_unheard(db, unheard).await;
        let second = resolve_a1(app).await;
        if second == first {
            return unheard.to_string();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "A-1 is never kept: it resolves to {second:?} after an unheard remapping"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Remaps A-1 straight in the database, as no catalog would: nobody hears of it.
async fn remap_unheard(db: &TestDatabase, sku: &str) {
    let store = Db::connect(&db.url, &DbOptions::default()).await.unwrap();
    sqlx::query(
        "UPDATE listings SET sku = $1 WHERE client_id = 'acme' AND channel = 'AMAZON' \
         AND marketplace_sku = 'A-1'",
    )
    .bind(sku)
    .execute(store.pool())
    .await
    .unwrap();
    store.close().await;
}

async fn a_replica_resolves_with_its_own_changes_at_once(db: TestDatabase) {
    // Arrange
    let mut app = replica(&db, true).await;
    until_kept(&mut app, &db, ["K-1", "K-3"]).await;

    // Act and assert: every answer right after a change already shows it.
    map(&mut app, "A-1", "K-2").await;
    assert_eq!(resolve_a1(&mut app).await, Some(("K-2".into(), true)));
    set_active(&mut app, "K-2", false).await;
    assert_eq!(resolve_a1(&mut app).await, Some(("K-2".into(), false)));
    set_active(&mut app, "K-2", true).await;
    assert_eq!(resolve_a1(&mut app).await, Some(("K-2".into(), true)));
    let file = b"channel,marketplace_sku,sku\r\nAMAZON,A-1,K-3\r\n";
    app.upload_listings("acme", false, file).await.unwrap();
    assert_eq!(resolve_a1(&mut app).await, Some(("K-3".into(), true)));
    let delete = pb::DeleteListingRequest {
        client_id: "acme".into(),
        channel: "AMAZON".into(),
        marketplace_sku: "A-1".into(),
    };
    app.catalog.delete_listing(delete).await.unwrap();
    assert_eq!(resolve_a1(&mut app).await, None);
    map(&mut app, "A-1", "K-1").await;
    assert_eq!(
        resolve_a1(&mut app).await,
        Some(("K-1".into(), true)),
        "a listing added after a miss is found at once"
    );
}

async fn other_replicas_hear_changes_and_forget_everything_when_hearing_breaks(db: TestDatabase) {
    // One process owns a SQLite file, so only PostgreSQL has other replicas to hear.
    if db.store == Store::Sqlite {
        return;
    }
    // Arrange
    let mut writer = replica(&db, true).await;
    let mut reader = replica(&db, false).await;
    let in_database = until_kept(&mut reader, &db, ["K-1", "K-3"]).await;
    let kept = resolve_a1(&mut reader).await;

    // Act and assert: a listening connection that stays quiet is checked, not dropped, so
    // the reader keeps what it kept.
    tokio::time::sleep(QUIET_CHECK + Duration::from_secs(1)).await;
    assert_eq!(
        resolve_a1(&mut reader).await,
        kept,
        "{in_database} is unheard"
    );

    // Act and assert: changes made on the writer reach the reader.
    map(&mut writer, "A-1", "K-2").await;
    until_resolved(&mut reader, Some(("K-2", true)), "a remapping").await;
    set_active(&mut writer, "K-2", false).await;
    until_resolved(&mut reader, Some(("K-2", false)), "a disabled product").await;

    // Act and assert: when the listening connections break, what was kept is forgotten,
    // and listening starts again.
    let in_database = until_kept(&mut reader, &db, ["K-1", "K-3"]).await;
    let store = Db::connect(&db.url, &DbOptions::default()).await.unwrap();
    let ended: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = $1",
    )
    .bind(LISTENER_NAME)
    .fetch_all(store.pool())
    .await
    .unwrap();
    store.close().await;
    assert_eq!(
        ended,
        [true, true],
        "both replicas listen on a connection of their own"
    );
    until_resolved(
        &mut reader,
        Some((in_database.as_str(), true)),
        "a broken connection",
    )
    .await;
    reader.mounted.listening().await;
    let next = if in_database == "K-1" { "K-3" } else { "K-1" };
    map(&mut writer, "A-1", next).await;
    until_resolved(
        &mut reader,
        Some((next, true)),
        "a change after listening again",
    )
    .await;
}

kosha_testkit::store_tests!(
    a_replica_resolves_with_its_own_changes_at_once,
    other_replicas_hear_changes_and_forget_everything_when_hearing_breaks,
);
