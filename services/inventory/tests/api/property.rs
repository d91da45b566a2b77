//! Random sequences of every stock operation, with resent requests and reused keys mixed
//! in, checked after every step against a model and by `Audit`.

use std::collections::HashMap;

use kosha_proto::kosha::inventory::v1 as pb;
use kosha_testkit::TestDatabase;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use tonic::Code;

use crate::support::*;

const STEPS: usize = 160;
const SKUS: [&str; 3] = ["P1", "P2", "P3"];
const POOLS: [&str; 2] = ["COMMON", "RES"];

/// Expected (available, allocated, recycle) per (SKU, pool, grade), kept from what each
/// successful response says happened.
type Model = HashMap<(String, String, i32), (i64, i64, i64)>;

/// A request sent earlier, kept to be sent again.
#[derive(Clone, Debug)]
enum Sent {
    Receive(pb::ReceiveRequest, pb::ReceiveResponse),
    Allocate(pb::AllocateRequest, pb::AllocateResponse),
    Release(pb::ReleaseRequest, pb::ReleaseResponse),
}

async fn random_operation_sequences_keep_every_invariant(db: TestDatabase) {
    let mut app = spawn_app(&db).await;
    app.create_pool("RES", &[]).await;
    let mut rng = StdRng::seed_from_u64(20240607);
    let mut model = Model::new();
    let mut sent: Vec<Sent> = Vec::new();
    let mut orders = 0;

    for step in 0..STEPS {
        let sku = SKUS[rng.random_range(0..SKUS.len())].to_string();
        let pool = POOLS[rng.random_range(0..POOLS.len())].to_string();
        let grade = if rng.random_bool(0.8) { PASS } else { FAIL };
        let quantity = rng.random_range(1..=6);
        let choice = rng.random_range(0..10);
        let what = match choice {
            0 => {
                // Receive.
                let request = pb::ReceiveRequest {
                    client_id: CLIENT.into(),
                    reference: format!("GRN-{step}"),
                    lines: vec![pb::ReceiveLine {
                        sku: sku.clone(),
                        grade,
                        quantity,
                    }],
                    idempotency_key: key(),
                    actor: "prop".into(),
                };
                let response = app
                    .client
                    .receive(request.clone())
                    .await
                    .unwrap()
                    .into_inner();
                entry(&mut model, &sku, "COMMON", grade).0 += quantity;
                sent.push(Sent::Receive(request, response));
                "receive"
            }
            1 => {
                // Move between the two pools.
                let to = if pool == "COMMON" { "RES" } else { "COMMON" };
                let mut request = move_request(&pool, to, &sku, quantity);
                request.lines[0].grade = grade;
                match app.client.move_stock(request).await {
                    Ok(_) => {
                        entry(&mut model, &sku, &pool, grade).0 -= quantity;
                        entry(&mut model, &sku, to, grade).0 += quantity;
                    }
                    Err(status) => {
                        expect_short(&status, entry(&mut model, &sku, &pool, grade).0 < quantity)
                    }
                }
                "move"
            }
            2 | 3 => {
                // Allocate a new order, or top up an earlier one.
                let top_up = orders > 0 && rng.random_bool(0.3);
                let order = if top_up {
                    rng.random_range(0..orders)
                } else {
                    orders
                };
                if !top_up {
                    orders += 1;
                }
                let mode = if rng.random_bool(0.5) {
                    pb::AllocationMode::Partial
                } else {
                    pb::AllocationMode::AllOrNothing
                };
                let line_sku = format!("P{}", order % 3 + 1);
                let mut request = allocate_request(
                    &format!("O:{order}"),
                    &pool,
                    mode,
                    &[("1", &line_sku, quantity)],
                    top_up,
                );
                request.grade = grade;
                match app
                    .client
                    .allocate(request.clone())
                    .await
                    .map(|r| r.into_inner())
                {
                    Ok(response) => {
                        for line in &response.lines {
                            let bucket = entry(&mut model, &line.sku, &response.pool, grade);
                            bucket.0 -= line.allocated_now;
                            bucket.1 += line.allocated_now;
                        }
                        sent.push(Sent::Allocate(request, response));
                    }
                    // A line keeps its SKU, pool and grade while it holds units.
                    Err(status) => {
                        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}")
                    }
                }
                "allocate"
            }
            4 => {
                // Release an order, wholly or a few units of its line.
                if orders == 0 {
                    continue;
                }
                let order = format!("O:{}", rng.random_range(0..orders));
                let some = rng.random_bool(0.5);
                let request = pb::ReleaseRequest {
                    client_id: CLIENT.into(),
                    order_ref: order,
                    line_ids: if some { vec!["1".into()] } else { vec![] },
                    quantity: if some { rng.random_range(1..=2) } else { 0 },
                    reason: "prop".into(),
                    idempotency_key: key(),
                    actor: "prop".into(),
                };
                match app
                    .client
                    .release(request.clone())
                    .await
                    .map(|r| r.into_inner())
                {
                    Ok(response) => {
                        for line in &response.released {
                            let bucket = entry(&mut model, &line.sku, &line.pool, line.grade);
                            bucket.1 -= line.quantity;
                            bucket.0 += line.quantity;
                        }
                        sent.push(Sent::Release(request, response));
                    }
                    Err(status) => {
                        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}")
                    }
                }
                "release"
            }
            5 => {
                // Consume one unit of an order's line.
                if orders == 0 {
                    continue;
                }
                let order = format!("O:{}", rng.random_range(0..orders));
                let allocations = app
                    .client
                    .list_allocations(pb::ListAllocationsRequest {
                        client_id: CLIENT.into(),
                        order_ref: order.clone(),
                        ..Default::default()
                    })
                    .await
                    .unwrap()
                    .into_inner()
                    .allocations;
                let request = pb::ConsumeRequest {
                    client_id: CLIENT.into(),
                    order_ref: order,
                    lines: vec![pb::ConsumeLine {
                        line_id: "1".into(),
                        quantity: 1,
                    }],
                    reference: format!("INV-{step}"),
                    idempotency_key: key(),
                    actor: "prop".into(),
                };
                match app.client.consume(request).await {
                    Ok(_) => {
                        let held = &allocations[0];
                        entry(&mut model, &held.sku, &held.pool, held.grade).1 -= 1;
                    }
                    Err(status) => {
                        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
                        assert!(allocations.iter().all(|a| a.quantity == 0));
                    }
                }
                "consume"
            }
            6 | 7 => {
                // Recycle or make live.
                let recycle = choice == 6;
                let result = if recycle {
                    app.client
                        .recycle(pb::RecycleRequest {
                            client_id: CLIENT.into(),
                            pool: pool.clone(),
                            sku: sku.clone(),
                            grade,
                            quantity,
                            reason: "prop".into(),
                            idempotency_key: key(),
                            actor: "prop".into(),
                        })
                        .await
                        .map(|_| ())
                } else {
                    app.client
                        .make_live(pb::MakeLiveRequest {
                            client_id: CLIENT.into(),
                            pool: pool.clone(),
                            sku: sku.clone(),
                            grade,
                            quantity,
                            reason: "prop".into(),
                            idempotency_key: key(),
                            actor: "prop".into(),
                        })
                        .await
                        .map(|_| ())
                };
                let bucket = entry(&mut model, &sku, &pool, grade);
                let (from, to) = if recycle {
                    (&mut bucket.0, 2)
                } else {
                    (&mut bucket.2, 0)
                };
                match result {
                    Ok(()) => {
                        *from -= quantity;
                        if to == 2 {
                            bucket.2 += quantity
                        } else {
                            bucket.0 += quantity
                        }
                    }
                    Err(status) => expect_short(&status, *from < quantity),
                }
                if recycle { "recycle" } else { "make-live" }
            }
            8 => {
                // Adjust AVAILABLE either way.
                let delta = if rng.random_bool(0.5) {
                    quantity
                } else {
                    -quantity
                };
                let request = pb::AdjustRequest {
                    client_id: CLIENT.into(),
                    pool: pool.clone(),
                    sku: sku.clone(),
                    grade,
                    state: pb::StockState::Available as i32,
                    delta,
                    reason: pb::AdjustReason::CountCorrection as i32,
                    note: String::new(),
                    idempotency_key: key(),
                    actor: "prop".into(),
                };
                let result = app.client.adjust(request).await;
                let bucket = entry(&mut model, &sku, &pool, grade);
                match result {
                    Ok(_) => bucket.0 += delta,
                    Err(status) => expect_short(&status, bucket.0 < -delta),
                }
                "adjust"
            }
            _ => {
                // Resend an earlier request; sometimes reuse its key for another request.
                if sent.is_empty() {
                    continue;
                }
                let earlier = sent[rng.random_range(0..sent.len())].clone();
                let reuse = rng.random_bool(0.3);
                match earlier {
                    Sent::Receive(request, response) => {
                        if reuse {
                            let mut other = request.clone();
                            other.lines[0].quantity += 1;
                            assert_eq!(
                                app.client.receive(other).await.unwrap_err().code(),
                                Code::AlreadyExists
                            );
                        } else {
                            assert_eq!(
                                app.client.receive(request).await.unwrap().into_inner(),
                                response
                            );
                        }
                    }
                    Sent::Allocate(request, response) => {
                        if reuse {
                            let mut other = request.clone();
                            other.top_up = !other.top_up;
                            assert_eq!(
                                app.client.allocate(other).await.unwrap_err().code(),
                                Code::AlreadyExists
                            );
                        } else {
                            assert_eq!(
                                app.client.allocate(request).await.unwrap().into_inner(),
                                response
                            );
                        }
                    }
                    Sent::Release(request, response) => {
                        assert_eq!(
                            app.client.release(request).await.unwrap().into_inner(),
                            response
                        );
                    }
                }
                "resend"
            }
        };

        // Every invariant, after every step.
        check_model(&mut app, &model, step, what).await;
        app.assert_books_clean().await;
    }
}

fn entry<'a>(model: &'a mut Model, sku: &str, pool: &str, grade: i32) -> &'a mut (i64, i64, i64) {
    model
        .entry((sku.to_string(), pool.to_string(), grade))
        .or_default()
}

/// A refusal is only right when the model agrees there was not enough.
fn expect_short(status: &tonic::Status, short: bool) {
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(short, "refused although the model has enough: {status:?}");
}

async fn check_model(app: &mut TestApp, model: &Model, step: usize, what: &str) {
    let stored = app
        .client
        .get_stock(pb::GetStockRequest {
            client_id: CLIENT.into(),
            skus: SKUS.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut actual: Model = HashMap::new();
    for level in stored.levels {
        let totals = level.totals.unwrap();
        assert!(totals.available >= 0 && totals.allocated >= 0 && totals.recycle >= 0);
        actual.insert(
            (level.sku, level.pool, level.grade),
            (totals.available, totals.allocated, totals.recycle),
        );
    }
    let expected: Model = model
        .iter()
        .filter(|(_, v)| **v != (0, 0, 0))
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    assert_eq!(actual, expected, "after step {step} ({what})");
}

kosha_testkit::store_tests!(random_operation_sequences_keep_every_invariant);
