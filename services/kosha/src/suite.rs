//! Every Kosha service in one process, on one address.
//!
//! Each service keeps its own database, as it would deployed alone (a SQLite file per
//! service under the data directory), and talks to the others through their gRPC
//! contracts over the shared address, exactly as across pods.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use kosha_runtime::config::sqlite_url_in;
use kosha_runtime::db::{Db, DbOptions};
use kosha_runtime::server::{Server, ServerOptions};
use tokio::net::TcpListener;

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
}

/// The suite, mounted and bound, ready to serve.
pub struct Suite {
    server: Server,
    listener: TcpListener,
    address: SocketAddr,
    catalog: kosha_catalog::startup::Mounted,
}

impl Suite {
    /// Opens every database, runs migrations, mounts every service and binds `listen`.
    pub async fn start(listen: SocketAddr, options: SuiteOptions) -> anyhow::Result<Self> {
        // Bind first: the services' addresses of each other are this very address.
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("bind {listen}"))?;
        let address = listener.local_addr()?;
        let mut server = Server::new(options.server.clone());

        let catalog_db = open(&options.data_dir, kosha_catalog::NAME, &options.db).await?;
        let catalog = kosha_catalog::startup::mount(
            &mut server,
            catalog_db,
            &options.catalog,
            &kosha_catalog::startup::Peers::default(),
        )
        .await?;

        Ok(Self {
            server,
            listener,
            address,
            catalog,
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
            ..
        } = self;
        let outcome = server.serve(listener, shutdown).await;
        catalog.shutdown().await;
        outcome
    }
}

async fn open(data_dir: &Path, service: &str, options: &DbOptions) -> anyhow::Result<Db> {
    let url = sqlite_url_in(data_dir, service);
    Db::connect(&url, options)
        .await
        .with_context(|| format!("open the {service} database"))
}
