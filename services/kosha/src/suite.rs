//! Every Kosha service in one process, on one address.
//!
//! Each service keeps its own database, as it would deployed alone (a SQLite file per
//! service under the data directory), and talks to the others through their gRPC
//! contracts over the shared address, exactly as across pods. Jobs come back from the
//! scheduler through one [`JobDispatcher`] that hands each to its owner in-process.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use kosha_proto::kosha::scheduler::v1::job_handler_server::JobHandlerServer;
use kosha_runtime::config::sqlite_url_in;
use kosha_runtime::db::{Db, DbOptions};
use kosha_runtime::server::{Server, ServerOptions};
use tokio::net::TcpListener;

use crate::jobs::JobDispatcher;

/// Settings of the whole suite.
#[derive(Debug, Clone)]
pub struct SuiteOptions {
    /// Directory holding one SQLite file per service.
    pub data_dir: PathBuf,
    /// Pool settings for every service's database.
    pub db: DbOptions,
    /// Server limits and shutdown timing.
    pub server: ServerOptions,
    /// Catalog settings.
    pub catalog: kosha_catalog::config::Settings,
    /// Scheduler settings.
    pub scheduler: kosha_scheduler::config::Settings,
    /// Inventory settings.
    pub inventory: kosha_inventory::config::Settings,
    /// Order settings.
    pub order: kosha_order::config::Settings,
    /// Purchase-order settings.
    pub purchase_order: kosha_purchase_order::config::Settings,
}

impl SuiteOptions {
    /// Defaults, plus whatever `KOSHA_*` variables set, for a suite under `data_dir`.
    pub fn from_env(data_dir: PathBuf) -> anyhow::Result<Self> {
        Self::read_env(data_dir).map_err(|problems| anyhow::anyhow!("{}", problems.join("; ")))
    }

    /// [`SuiteOptions::from_env`], with every unreadable or invalid service setting named,
    /// so that all of them can be reported at once before any file is touched.
    pub fn read_env(data_dir: PathBuf) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let catalog = read_settings::<kosha_catalog::config::Settings>("catalog", &mut problems);
        let scheduler =
            read_settings::<kosha_scheduler::config::Settings>("scheduler", &mut problems);
        let inventory =
            read_settings::<kosha_inventory::config::Settings>("inventory", &mut problems);
        let order = read_settings::<kosha_order::config::Settings>("order", &mut problems);
        let purchase_order = read_settings::<kosha_purchase_order::config::Settings>(
            "purchase-order",
            &mut problems,
        );
        let named = |service: &str, found: Vec<String>| {
            found
                .into_iter()
                .map(|problem| format!("{service}: {problem}"))
                .collect::<Vec<_>>()
        };
        if let Some(settings) = &catalog {
            problems.extend(named("catalog", settings.problems()));
        }
        if let Some(settings) = &scheduler {
            if let Err(found) = settings.options() {
                problems.extend(named("scheduler", found));
            }
            if let Err(found) = scheduler_peers("127.0.0.1:0", settings) {
                problems.extend(named("scheduler", found));
            }
        }
        if let Some(settings) = &inventory {
            problems.extend(named("inventory", settings.problems()));
        }
        if let Some(settings) = &order
            && let Err(found) = settings.resolve()
        {
            problems.extend(named("order", found));
        }
        if let Some(settings) = &purchase_order {
            problems.extend(named("purchase-order", settings.problems()));
        }
        match (catalog, scheduler, inventory, order, purchase_order) {
            (
                Some(catalog),
                Some(scheduler),
                Some(inventory),
                Some(order),
                Some(purchase_order),
            ) if problems.is_empty() => Ok(Self {
                data_dir,
                db: DbOptions::default(),
                server: ServerOptions::default(),
                catalog,
                scheduler,
                inventory,
                order,
                purchase_order,
            }),
            _ => Err(problems),
        }
    }
}

/// The services of this process that own jobs: the scheduler calls them at the runner's
/// own address, where [`JobDispatcher`] hands each job to its owner.
const LOCAL_JOB_OWNERS: [&str; 2] = [kosha_inventory::NAME, kosha_order::NAME];

/// Whom the runner's scheduler calls: the local owners, and any the settings add.
fn scheduler_peers(
    own_address: &str,
    settings: &kosha_scheduler::config::Settings,
) -> Result<kosha_scheduler::config::Peers, Vec<String>> {
    kosha_scheduler::config::Peers::in_process(own_address, &LOCAL_JOB_OWNERS, settings)
}

/// A service's settings from the environment, or `None` with the problem added to
/// `problems` (naming the variable, since the runner has no per-service flags).
fn read_settings<S: clap::Args>(service: &str, problems: &mut Vec<String>) -> Option<S> {
    match settings_from_env::<S>() {
        Ok(settings) => Some(settings),
        Err(error) => {
            problems.push(format!("{service}: {error}"));
            None
        }
    }
}

/// A service's own settings read from its `KOSHA_*` variables and defaults only. The
/// runner takes no per-service flags: several services share setting names (each has a
/// `KOSHA_CATALOG_ADDR`, say), which one command line could not tell apart.
pub fn settings_from_env<S: clap::Args>() -> anyhow::Result<S> {
    #[derive(clap::Parser)]
    struct EnvOnly<S: clap::Args> {
        #[command(flatten)]
        settings: S,
    }
    match <EnvOnly<S> as clap::Parser>::try_parse_from(["kosha"]) {
        Ok(parsed) => Ok(parsed.settings),
        Err(error) => Err(anyhow::anyhow!("{}", env_error::<S>(&error))),
    }
}

/// What clap said of a setting, told in terms of its environment variable: clap names
/// the flag, which the runner does not take.
fn env_error<S: clap::Args>(error: &clap::Error) -> String {
    let command = S::augment_args(clap::Command::new("kosha"));
    setting_error(&command, error, |_, variable| variable.to_string())
}

/// The first line of what clap said of a setting of `command` that does not parse, with
/// the flag as `name` writes it from its long name and its variable.
pub(crate) fn setting_error(
    command: &clap::Command,
    error: &clap::Error,
    name: impl Fn(&str, &str) -> String,
) -> String {
    use clap::error::{ContextKind, ContextValue};
    let said = error.to_string();
    let first = said
        .lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ")
        .to_string();
    let Some(ContextValue::String(flag)) = error.get(ContextKind::InvalidArg) else {
        return first;
    };
    let long = flag
        .trim_start_matches("--")
        .split([' ', '='])
        .next()
        .unwrap_or_default();
    let variable_opt = std::iter::once(command)
        .chain(command.get_subcommands())
        .flat_map(clap::Command::get_arguments)
        .find(|arg| arg.get_long() == Some(long))
        .and_then(|arg| arg.get_env())
        .map(|env| env.to_string_lossy().into_owned());
    match variable_opt {
        Some(variable) => first.replace(flag.as_str(), &name(long, &variable)),
        None => first,
    }
}

/// The suite, mounted and bound, ready to serve.
pub struct Suite {
    server: Server,
    listener: TcpListener,
    address: SocketAddr,
    catalog: kosha_catalog::startup::Mounted,
    scheduler: kosha_scheduler::startup::Mounted,
    inventory: kosha_inventory::startup::Mounted,
    order: kosha_order::startup::Mounted,
    purchase_order: kosha_purchase_order::startup::Mounted,
}

impl Suite {
    /// Opens every database, runs migrations, mounts every service and binds `listen`.
    pub async fn start(listen: SocketAddr, options: SuiteOptions) -> anyhow::Result<Self> {
        // Bind first: the services' addresses of each other are this very address.
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("bind {listen}"))?;
        let address = listener.local_addr()?;
        let own_address = address.to_string();
        let mut server = Server::new(options.server.clone());
        let mut jobs = JobDispatcher::default();

        let catalog = kosha_catalog::startup::mount(
            &mut server,
            open(&options, kosha_catalog::NAME).await?,
            &options.catalog,
            &kosha_catalog::startup::Peers::default(),
        )
        .await?;

        let scheduler = kosha_scheduler::startup::mount(
            &mut server,
            open(&options, kosha_scheduler::NAME).await?,
            &options.scheduler,
            &scheduler_peers(&own_address, &options.scheduler)
                .map_err(|problems| anyhow::anyhow!("{}", problems.join("; ")))?,
        )
        .await?;

        let inventory = kosha_inventory::startup::mount(
            &mut server,
            open(&options, kosha_inventory::NAME).await?,
            &options.inventory,
            &kosha_inventory::startup::Peers {
                scheduler: own_address.clone(),
            },
        )
        .await?;
        jobs.register(kosha_inventory::NAME, inventory.job_handler());

        let order = kosha_order::startup::mount(
            &mut server,
            open(&options, kosha_order::NAME).await?,
            &options.order,
            &kosha_order::peers::Peers::all_at(&own_address),
        )
        .await?;
        jobs.register(kosha_order::NAME, order.job_handler());

        let purchase_order = kosha_purchase_order::startup::mount(
            &mut server,
            open(&options, kosha_purchase_order::NAME).await?,
            &options.purchase_order,
            &kosha_purchase_order::startup::Peers {
                catalog: own_address.clone(),
                inventory: own_address.clone(),
                order: own_address.clone(),
            },
        )
        .await?;

        server.add_unlisted_service(JobHandlerServer::new(jobs));
        Ok(Self {
            server,
            listener,
            address,
            catalog,
            scheduler,
            inventory,
            order,
            purchase_order,
        })
    }

    /// The bound address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Serves until `shutdown` resolves, drains, then stops every background task.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> anyhow::Result<()> {
        let Self {
            server,
            listener,
            catalog,
            scheduler,
            inventory,
            order,
            purchase_order,
            ..
        } = self;
        let outcome = server.serve(listener, shutdown).await;
        // The scheduler first, so no job starts against a service that is stopping.
        scheduler.shutdown().await;
        purchase_order.shutdown().await;
        order.shutdown().await;
        inventory.shutdown().await;
        catalog.shutdown().await;
        outcome
    }
}

async fn open(options: &SuiteOptions, service: &str) -> anyhow::Result<Db> {
    let url = sqlite_url_in(&options.data_dir, service);
    Db::connect(&url, &options.db)
        .await
        .with_context(|| format!("open the {service} database"))
}
