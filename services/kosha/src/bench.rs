//! `kosha bench …`: the benchmarks the project ships. Each starts what it measures itself
//! (servers in-process, a throwaway PostgreSQL cluster where asked) and prints its figures.

use clap::Subcommand;

/// Which benchmark to run.
#[derive(Debug, Clone, Subcommand)]
pub enum Bench {
    /// A large product create upload against plain SQL loading of the same rows.
    Upload {
        /// Rows in the generated file.
        #[arg(long, default_value_t = 100_000)]
        rows: usize,
        /// Which stores: `sqlite`, `postgres` or `both`.
        #[arg(long, default_value = "both")]
        store: String,
    },
    /// pgbench doing every write of one allocation, against the Allocate RPC (PostgreSQL).
    Allocate(kosha_inventory::bench::BenchArgs),
    /// CreateOrder end to end (resolve, allocate, persist) against a pgbench script doing
    /// every row write of that path (PostgreSQL).
    Order {
        /// Orders per run.
        #[arg(long, default_value_t = 4000)]
        orders: usize,
        /// Concurrency levels (clients), comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "8,32")]
        clients: Vec<usize>,
    },
    /// Scheduling throughput and due-to-run lag with many pending jobs.
    Scheduler {
        /// Jobs left pending while lag is measured.
        #[arg(long, default_value_t = 10_000)]
        pending: usize,
        /// Which stores: `sqlite`, `postgres` or `both`.
        #[arg(long, default_value = "both")]
        store: String,
    },
}

/// Whether a `--store` value includes SQLite and PostgreSQL.
fn stores(choice: &str) -> anyhow::Result<(bool, bool)> {
    match choice {
        "sqlite" => Ok((true, false)),
        "postgres" => Ok((false, true)),
        "both" => Ok((true, true)),
        other => anyhow::bail!("--store `{other}`: expected sqlite, postgres or both"),
    }
}

impl Bench {
    /// Runs the benchmark and prints its report.
    pub async fn run(self) -> anyhow::Result<()> {
        match self {
            Self::Upload { rows, store } => {
                let (sqlite, postgres) = stores(&store)?;
                for (wanted, on_postgres) in [(sqlite, false), (postgres, true)] {
                    if wanted {
                        let report =
                            kosha_catalog::bench::upload_benchmark(rows, on_postgres).await?;
                        println!("{report}");
                    }
                }
            }
            Self::Allocate(args) => kosha_inventory::bench::run_and_print(&args).await?,
            Self::Order { orders, clients } => {
                let options = kosha_order::bench::BenchOptions {
                    orders,
                    clients,
                    ..kosha_order::bench::BenchOptions::default()
                };
                let report = kosha_order::bench::run(&options).await?;
                println!("{report}");
            }
            Self::Scheduler { pending, store } => {
                use kosha_scheduler::bench::{BenchOptions, BenchStore};
                let (sqlite, postgres) = stores(&store)?;
                let mut chosen = Vec::new();
                if sqlite {
                    chosen.push(BenchStore::Sqlite);
                }
                if postgres {
                    chosen.push(BenchStore::Postgres);
                }
                let options = BenchOptions {
                    pending_jobs: pending,
                    stores: chosen,
                    ..BenchOptions::default()
                };
                let report = kosha_scheduler::bench::run(&options).await?;
                println!("{report}");
            }
        }
        Ok(())
    }
}
