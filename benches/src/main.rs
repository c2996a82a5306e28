//! `cosell-bench`: everything side by side in one run, printed as one table of figures,
//! targets and ratios. `--quick` sizes every scenario down to finish in about a minute.
//! Timings are reported, never asserted.

mod backfill;
mod bare;
mod cold_start;
mod env;
mod inbound;
mod outbound;
mod report;
mod stats;

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, ValueEnum};

use report::{ratio, Table};
use stats::ms;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Section {
    Inbound,
    Outbound,
    ColdStart,
    Backfill,
}

#[derive(Parser)]
#[command(about = "Benchmarks of cosell-sync against the local stand-ins")]
struct Args {
    /// Small sizes (500 referrals, 5,000 opportunities, 1,000 backfilled): about a minute.
    #[arg(long)]
    quick: bool,
    /// Run only these sections (comma-separated); all by default.
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Section>,
    /// Inbound worker counts to run (comma-separated); 1,4,16 by default.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 4, 16])]
    workers: Vec<usize>,
    /// Also write the table as Markdown to this file.
    #[arg(long)]
    markdown: Option<PathBuf>,
}

struct Sizes {
    referrals: usize,
    opportunities: usize,
    changes: [usize; 4],
    backfill: usize,
    /// The allowed rate of the throttled backfill, in syncs per second.
    backfill_rate: f64,
    cold_runs: usize,
}

impl Sizes {
    fn new(quick: bool) -> Sizes {
        if quick {
            Sizes {
                referrals: 500,
                opportunities: 5_000,
                changes: [0, 1, 100, 1_000],
                backfill: 1_000,
                backfill_rate: 100.0,
                cold_runs: 3,
            }
        } else {
            Sizes {
                referrals: 10_000,
                opportunities: 100_000,
                changes: [0, 1, 100, 10_000],
                backfill: 10_000,
                backfill_rate: 100.0,
                cold_runs: 5,
            }
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let sizes = Sizes::new(args.quick);
    let wanted = |s| args.only.is_empty() || args.only.contains(&s);
    let mut table = Table::default();
    if wanted(Section::Inbound) {
        inbound_section(&sizes, &args.workers, &mut table).await?;
    }
    if wanted(Section::Outbound) {
        outbound_section(&sizes, &mut table).await?;
    }
    if wanted(Section::ColdStart) {
        cold_start_section(&sizes, &mut table).await?;
    }
    if wanted(Section::Backfill) {
        backfill_section(&sizes, &mut table).await?;
    }
    print!("\n{}", table.text());
    if let Some(path) = &args.markdown {
        std::fs::write(path, table.markdown())?;
    }
    Ok(())
}

async fn inbound_section(
    sizes: &Sizes,
    worker_counts: &[usize],
    table: &mut Table,
) -> anyhow::Result<()> {
    let pc = env::start_pc().await?;
    let n = sizes.referrals;
    eprintln!("inbound: creating and signing {n} referrals");
    let ids = Arc::new(env::create_referrals(&pc, n + 1));
    let deliveries = Arc::new(inbound::sign_all(&pc, &ids).await);
    let mut w1 = None;
    for &workers in worker_counts {
        eprintln!("inbound: {workers} worker(s)");
        let inbound = inbound::run(&pc, deliveries.clone(), workers).await?;
        let ours = &inbound.run;
        let bare = bare::run(&pc, deliveries.clone(), workers).await?;
        let rate = ours.per_second();
        let w = format!("{workers} worker(s)");
        table.check(
            format!("inbound syncs/s, {w}"),
            format!(
                "{rate:.0}/s ({} syncs, {} failed)",
                ours.syncs, inbound.failed
            ),
            if workers == 16 { ">= 1000/s" } else { "" },
            ratio(rate, 1000.0),
            workers != 16 || rate >= 1000.0,
        );
        table.info(
            format!("bare syncs/s, {w}"),
            format!("{:.0}/s", bare.per_second()),
        );
        let cost = bare.per_second() / rate;
        table.check(
            format!("cost per sync / bare, {w}"),
            format!("{cost:.2}"),
            "<= 1.3",
            format!("{:.2}x", cost / 1.3),
            cost <= 1.3,
        );
        table.info(
            format!("latency p50 / p99, {w}"),
            format!(
                "{:.2} / {:.2} ms (bare {:.2} / {:.2})",
                ms(ours.latency.p50()),
                ms(ours.latency.p99()),
                ms(bare.latency.p50()),
                ms(bare.latency.p99())
            ),
        );
        let pair = |l: &stats::Latencies| format!("{:.2} / {:.2}", ms(l.p50()), ms(l.p99()));
        table.info(
            format!("p50 / p99 in ms: intake answer, queue wait, sync, {w}"),
            format!(
                "{}, {}, {}",
                pair(&inbound.intake),
                pair(&inbound.queued),
                pair(&inbound.sync)
            ),
        );
        table.info(
            format!("requests per sync, {w}"),
            format!(
                "PC {:.2} + DV {:.2} (bare PC {:.2} + DV {:.2})",
                ours.pc_requests_per_sync,
                ours.dv_requests_per_sync,
                bare.pc_requests_per_sync,
                bare.dv_requests_per_sync
            ),
        );
        if workers == 1 {
            eprintln!("  DV routes, ours: {:?}", ours.dv_routes);
            eprintln!("  DV routes, bare: {:?}", bare.dv_routes);
            w1 = Some((ours.latency.p99(), bare.latency.p99()));
        }
    }
    if let Some((ours, bare)) = w1 {
        let over = ms(ours.saturating_sub(bare));
        table.check(
            "p99 overhead over bare, 1 worker",
            format!("{over:.2} ms"),
            "< 5 ms",
            format!("{:.2}x", over / 5.0),
            over < 5.0,
        );
    }
    pc.shutdown().await;
    Ok(())
}

async fn outbound_section(sizes: &Sizes, table: &mut Table) -> anyhow::Result<()> {
    eprintln!("outbound: {} opportunities", sizes.opportunities);
    let run = outbound::run(sizes.opportunities, &sizes.changes).await?;
    table.info(
        format!("outbound first (full) poll, {} rows", run.table),
        format!(
            "{} requests, {:.0} ms",
            run.full_read_requests,
            ms(run.full_read)
        ),
    );
    for p in &run.polls {
        // One request when nothing changed; one more per page of changes (the client asks
        // for 500-row pages).
        let bound = 1 + (p.changed as u64).div_ceil(500);
        table.check(
            format!("outbound poll, {} of {} changed", p.changed, run.table),
            format!("{} requests, lag {:.1} ms", p.requests, ms(p.lag)),
            format!("<= {bound} requests"),
            ratio(p.requests as f64, bound as f64),
            p.requests <= bound,
        );
    }
    table.info(
        "outbound poll interval (adds to the lag)",
        format!("{:?}", run.poll_interval),
    );
    Ok(())
}

async fn cold_start_section(sizes: &Sizes, table: &mut Table) -> anyhow::Result<()> {
    eprintln!("cold start: {} run(s) per function", sizes.cold_runs);
    let (starts, moto_call) = cold_start::run(sizes.cold_runs).await?;
    table.info(
        "moto (local AWS) round trip, one DynamoDB call, p50",
        format!("{:.1} ms", ms(moto_call)),
    );
    for f in starts {
        let first = ms(f.first_event);
        table.check(
            format!("cold start {}: init / first event", f.function),
            format!(
                "{:.1} / {first:.1} ms{}",
                ms(f.init),
                if f.handled { "" } else { " (error answer)" }
            ),
            "< 20 ms",
            ratio(first, 20.0),
            f.handled && first < 20.0,
        );
        let mib = f.peak_rss as f64 / (1024.0 * 1024.0);
        table.check(
            format!("peak RSS {}", f.function),
            format!("{mib:.1} MiB"),
            "< 32 MiB",
            ratio(mib, 32.0),
            mib < 32.0,
        );
        let zip = f.zip_bytes as f64 / (1024.0 * 1024.0);
        table.check(
            format!("zip {} ({})", f.function, f.zipped),
            format!("{zip:.2} MiB"),
            "< 8 MiB",
            ratio(zip, 8.0),
            zip < 8.0,
        );
    }
    Ok(())
}

async fn backfill_section(sizes: &Sizes, table: &mut Table) -> anyhow::Result<()> {
    eprintln!(
        "backfill: {} referrals at {} syncs/s allowed",
        sizes.backfill, sizes.backfill_rate
    );
    let r = backfill::run(sizes.backfill, sizes.backfill_rate, 16).await?;
    let (pc, dv) = r.fraction;
    let best = pc.max(dv);
    table.check(
        format!(
            "throttled backfill of {}, answered / allowed (rate x time + burst)",
            r.referrals
        ),
        format!(
            "PC {:.0}/{:.0} req/s ({:.0}%), DV {:.0}/{:.0} req/s ({:.0}%), {:.1} s",
            r.achieved.0,
            r.allowed.0,
            pc * 100.0,
            r.achieved.1,
            r.allowed.1,
            dv * 100.0,
            r.elapsed.as_secs_f64()
        ),
        ">= 90%",
        format!("{:.2}x", best / 0.9),
        best >= 0.9,
    );
    table.info(
        "throttled backfill: 429s answered",
        format!("PC {}, DV {}", r.throttled.0, r.throttled.1),
    );
    table.check(
        "throttled backfill: items lost",
        format!(
            "{} (synced {}, dead letters {})",
            r.lost, r.synced, r.dead_letters
        ),
        "0",
        "",
        r.lost == 0 && r.dead_letters == 0,
    );
    Ok(())
}
