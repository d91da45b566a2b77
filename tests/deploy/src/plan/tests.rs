//! Each test changes one thing in the real rendering of an overlay, the way a careless
//! edit of the base would, and expects the plan to name that thing.

use serde_json::json;

use super::*;
use crate::manifest::{RenderError, render};

/// The rendered overlay, or `None` (with a notice) when kubectl is missing.
fn rendered(overlay: &str) -> Option<Manifest> {
    let dir = crate::workspace_root().join("k8s/overlays").join(overlay);
    match render(&dir) {
        Ok(manifest) => Some(manifest),
        Err(RenderError::NoKubectl(why)) => {
            kosha_testkit::skip_or_fail("kubectl", &why);
            None
        }
        Err(error) => panic!("render {overlay}: {error}"),
    }
}

/// What the catalog binary reads, known without building it: the common settings.
fn catalog_settings() -> KnownSettings {
    use clap::Args as _;
    let command = kosha_runtime::config::CommonArgs::augment_args(clap::Command::new("c"));
    BTreeMap::from([("kosha-catalog".to_string(), Settings::of_command(&command))])
}

fn problems_of(manifest: &Manifest) -> Vec<String> {
    match plan(manifest, &catalog_settings()) {
        Ok(_) => Vec::new(),
        Err(problems) => problems,
    }
}

fn assert_reported(manifest: &Manifest, expected: &str) {
    let problems = problems_of(manifest);
    assert!(
        problems.iter().any(|problem| problem.contains(expected)),
        "expected a problem containing {expected:?}, got {problems:#?}"
    );
}

fn container<'a>(manifest: &'a mut Manifest, deployment: &str) -> &'a mut Value {
    let object = manifest
        .get_mut("Deployment", deployment)
        .expect("deployment");
    &mut object["spec"]["template"]["spec"]["containers"][0]
}

fn config_map<'a>(
    manifest: &'a mut Manifest,
    prefix: &str,
) -> &'a mut serde_json::Map<String, Value> {
    manifest
        .get_generated_mut("ConfigMap", prefix)
        .expect("config map")["data"]
        .as_object_mut()
        .expect("data")
}

#[test]
fn the_dev_overlay_as_committed_passes_every_check() {
    let Some(manifest) = rendered("dev") else {
        return;
    };

    let plan = plan(&manifest, &catalog_settings()).unwrap_or_else(|p| panic!("{p:#?}"));

    let names: Vec<&str> = plan
        .services
        .iter()
        .map(|s| s.deployment.as_str())
        .collect();
    assert_eq!(names.len(), 5, "{names:?}");
    let catalog = plan
        .services
        .iter()
        .find(|s| s.deployment == "catalog")
        .unwrap();
    assert_eq!(catalog.binary, "kosha-catalog");
    assert_eq!(catalog.port, 50051);
    assert_eq!(catalog.readiness_service, "kosha.catalog.v1.CatalogService");
    assert_eq!(catalog.liveness_service, "");
    assert!(
        catalog
            .database_url
            .value
            .starts_with("postgres://kosha_catalog:")
    );
    let database = plan
        .database_opt
        .expect("the dev overlay has its own database");
    assert_eq!(database.workload, "StatefulSet/postgres");
    assert!(
        database
            .init_scripts
            .iter()
            .any(|(_, sql)| sql.contains("CREATE DATABASE"))
    );
}

#[test]
fn every_address_setting_resolves_to_the_deployment_behind_its_service() {
    let Some(manifest) = rendered("dev") else {
        return;
    };

    let plan = plan(&manifest, &KnownSettings::new()).unwrap_or_else(|p| panic!("{p:#?}"));

    let order = plan
        .services
        .iter()
        .find(|s| s.deployment == "order")
        .unwrap();
    let targets: BTreeSet<&str> = order
        .endpoints
        .iter()
        .map(|e| e.deployment.as_str())
        .collect();
    assert_eq!(
        targets,
        BTreeSet::from(["catalog", "inventory", "scheduler"])
    );
    let scheduler = plan
        .services
        .iter()
        .find(|s| s.deployment == "scheduler")
        .unwrap();
    let targets: BTreeSet<&str> = scheduler
        .endpoints
        .iter()
        .map(|e| e.deployment.as_str())
        .collect();
    assert_eq!(
        targets,
        BTreeSet::from(["inventory", "order", "purchase-order"])
    );
}

#[test]
fn the_prod_overlay_passes_with_the_secrets_its_operator_provides() {
    let Some(mut manifest) = rendered("prod") else {
        return;
    };
    let namespace = manifest.namespace().unwrap_or("kosha").to_string();
    for service in [
        "catalog",
        "inventory",
        "scheduler",
        "order",
        "purchase-order",
    ] {
        let role = format!("kosha_{}", service.replace('-', "_"));
        manifest.objects.push(json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": format!("kosha-{service}-database"), "namespace": namespace},
            "stringData": {
                "url": format!("postgres://{role}:pw@kosha-postgres-rw:5432/{role}")
            },
        }));
    }

    let plan = plan(&manifest, &catalog_settings()).unwrap_or_else(|p| panic!("{p:#?}"));

    assert_eq!(plan.services.len(), 5);
    assert!(
        plan.database_opt.is_none(),
        "the prod database is the operator's cluster"
    );
}

#[test]
fn a_container_port_the_service_does_not_target_is_reported() {
    let Some(mut manifest) = rendered("dev") else {
        return;
    };
    container(&mut manifest, "inventory")["ports"][0]["containerPort"] = json!(50052);

    assert_reported(
        &manifest,
        "Deployment inventory: readinessProbe probes port 50051",
    );
    assert_reported(
        &manifest,
        "KOSHA_LISTEN=0.0.0.0:50051 listens on port 50051",
    );
}

#[test]
fn a_service_target_port_other_than_the_grpc_port_is_reported() {
    let Some(mut manifest) = rendered("dev") else {
        return;
    };
    let service = manifest.get_mut("Service", "order").unwrap();
    service["spec"]["ports"][0]["targetPort"] = json!(8080);

    assert_reported(&manifest, "Service `order` port 50051 targets 8080");
}

#[test]
fn a_readiness_probe_on_another_port_is_reported() {
    let Some(mut manifest) = rendered("dev") else {
        return;
    };
    container(&mut manifest, "scheduler")["readinessProbe"]["grpc"]["port"] = json!(50052);

    assert_reported(
        &manifest,
        "Deployment scheduler: readinessProbe probes port 50052",
    );
}

#[test]
fn a_readiness_probe_naming_no_grpc_service_is_reported() {
    let Some(mut manifest) = rendered("dev") else {
        return;
    };
    container(&mut manifest, "catalog")["readinessProbe"]["grpc"]["service"] =
        json!("kosha.catalog.v1.Catalog");

    assert_reported(
        &manifest,
        "`kosha.catalog.v1.Catalog`, which no proto declares",
    );
}

#[test]
fn a_liveness_probe_asking_for_the_service_name_is_reported() {
    let Some(mut manifest) = rendered("dev") else {
        return;
    };
    container(&mut manifest, "order")["livenessProbe"]["grpc"]["service"] =
        json!("kosha.order.v1.OrderService");

    assert_reported(
        &manifest,
        "livenessProbe names `kosha.order.v1.OrderService`",
    );
}

#[test]
fn a_listen_port_other_than_the_container_port_is_reported() {
    let Some(mut manifest) = rendered("dev") else {
        return;
    };
    config_map(&mut manifest, "kosha-common").insert("KOSHA_LISTEN".into(), json!("0.0.0.0:50061"));

    assert_reported(
        &manifest,
        "Deployment catalog: KOSHA_LISTEN=0.0.0.0:50061 listens on port 50061",
    );
}

#[test]
fn a_loopback_listen_address_is_reported() {
    let Some(mut manifest) = rendered("dev") else {
        return;
    };
    config_map(&mut manifest, "kosha-common")
        .insert("KOSHA_LISTEN".into(), json!("127.0.0.1:50051"));

    assert_reported(&manifest, "is not reachable from other pods");
}

#[test]
fn a_misspelt_setting_name_is_reported() {
    let Some(mut manifest) = rendered("dev") else {
        return;
    };
    let data = config_map(&mut manifest, "kosha-common");
    let value = data.remove("KOSHA_LISTEN").unwrap();
    data.insert("KOSHA_LISTN".into(), value);

    assert_reported(
        &manifest,
        "Deployment catalog: KOSHA_LISTN is not a setting of kosha-catalog",
    );
    assert_reported(&manifest, "Deployment catalog: KOSHA_LISTEN is not set");
}

#[test]
fn an_address_naming_no_service_is_reported() {
    let Some(mut manifest) = rendered("dev") else {
        return;
    };
    config_map(&mut manifest, "kosha-inventory")
        .insert("KOSHA_SCHEDULER_ADDR".into(), json!("schedular:50051"));

    assert_reported(&manifest, "`schedular` is not the DNS name of any Service");
}

#[test]
fn an_address_on_a_port_the_service_does_not_expose_is_reported() {
    let Some(mut manifest) = rendered("dev") else {
        return;
    };
    config_map(&mut manifest, "kosha-order").insert(
        "KOSHA_CATALOG_ADDR".into(),
        json!("catalog.kosha-dev.svc.cluster.local:50052"),
    );

    assert_reported(
        &manifest,
        "Service `catalog` has no port 50052 (it has 50051)",
    );
}

#[test]
fn an_address_setting_reaching_another_service_is_reported() {
    let Some(mut manifest) = rendered("dev") else {
        return;
    };
    config_map(&mut manifest, "kosha-order")
        .insert("KOSHA_INVENTORY_ADDR".into(), json!("catalog:50051"));

    assert_reported(
        &manifest,
        "KOSHA_INVENTORY_ADDR=catalog:50051 reaches the catalog pods",
    );
}

#[test]
fn a_database_url_file_outside_the_secret_mount_is_reported() {
    let Some(mut manifest) = rendered("dev") else {
        return;
    };
    config_map(&mut manifest, "kosha-common")
        .insert("KOSHA_DATABASE_URL_FILE".into(), json!("/etc/kosha/db/url"));

    assert_reported(
        &manifest,
        "KOSHA_DATABASE_URL_FILE=/etc/kosha/db/url is under no volume mount",
    );
}

#[test]
fn a_secret_item_mapped_to_another_file_is_reported() {
    let Some(mut manifest) = rendered("dev") else {
        return;
    };
    let deployment = manifest.get_mut("Deployment", "purchase-order").unwrap();
    deployment["spec"]["template"]["spec"]["volumes"][0]["secret"]["items"][0]["path"] =
        json!("database-url");

    assert_reported(&manifest, "maps no item to `url`");
}

#[test]
fn a_database_url_on_a_port_the_database_service_lacks_is_reported() {
    let Some(mut manifest) = rendered("dev") else {
        return;
    };
    let secret = manifest
        .get_generated_mut("Secret", "kosha-catalog-database")
        .unwrap();
    secret["data"] = json!({});
    secret["stringData"] = json!({"url": "postgres://kosha_catalog:x@postgres:5433/kosha_catalog"});

    assert_reported(&manifest, "the database URL uses port 5433");
}

#[test]
fn a_grace_period_shorter_than_the_drain_is_reported() {
    let Some(mut manifest) = rendered("dev") else {
        return;
    };
    let deployment = manifest.get_mut("Deployment", "catalog").unwrap();
    deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = json!(20);

    assert_reported(&manifest, "terminationGracePeriodSeconds 20 must exceed");
}

#[test]
fn a_command_the_image_does_not_hold_is_reported() {
    let Some(mut manifest) = rendered("dev") else {
        return;
    };
    container(&mut manifest, "order")["command"] = json!(["/usr/local/bin/kosha-catalog"]);

    assert_reported(&manifest, "the command runs `kosha-catalog` but the image");
}

#[test]
fn a_config_map_reference_that_is_not_rendered_is_reported() {
    let Some(mut manifest) = rendered("dev") else {
        return;
    };
    container(&mut manifest, "scheduler")["envFrom"][1]["configMapRef"]["name"] =
        json!("kosha-schedular");

    assert_reported(&manifest, "envFrom names ConfigMap `kosha-schedular`");
}
