//! Runs the CreateOrder benchmark: `cargo run -p kosha-order --release --example
//! create_order_bench -- [ORDERS] [CLIENTS,CLIENTS…]` (defaults: 4000 orders; 8 and 32
//! clients). Needs PostgreSQL's binaries (a throwaway cluster is started) and pgbench.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut options = kosha_order::bench::BenchOptions::default();
    let mut args = std::env::args().skip(1);
    if let Some(orders) = args.next() {
        options.orders = orders.parse()?;
    }
    if let Some(clients) = args.next() {
        options.clients = clients
            .split(',')
            .map(str::parse)
            .collect::<Result<_, _>>()?;
    }
    let report = kosha_order::bench::run(&options).await?;
    println!("{report}");
    Ok(())
}
