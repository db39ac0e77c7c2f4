//! New-holder grants per second through the lock service, with durability off, with one
//! fsync per change, and with group commit, at several numbers of concurrent clients.
//!
//! Run: `cargo bench --bench grants` (about 15 s after the build; `cargo test --benches`
//! only runs it briefly as a smoke test). Set `FOOLOCK_BENCH_DIR` to put the state
//! file on a particular disk; by default it goes under `target/`, on the project's disk.
//!
//! Each client repeatedly acquires its own job and releases it again, so every grant gives
//! the job a new holder and is followed by a release: two changes that must be on disk
//! before their replies. The table stays small, so the numbers measure the cost of saving,
//! not the size of the state.

use foolock::engine::{Engine, Rules};
use foolock::service::LockService;
use foolock::store::{Batching, Store};
use foolock::time::SystemClock;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const RUN_FOR: Duration = Duration::from_millis(1500);
/// Under `cargo test --benches` (no `--bench` flag) only check that it runs.
const SMOKE_RUN_FOR: Duration = Duration::from_millis(100);
const CLIENTS: [usize; 3] = [1, 8, 64];

#[derive(Clone, Copy)]
enum Mode {
    Memory,
    PerChange,
    GroupCommit,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Memory => "durability off",
            Mode::PerChange => "fsync per change",
            Mode::GroupCommit => "group commit",
        }
    }
}

fn bench_dir() -> PathBuf {
    std::env::var_os("FOOLOCK_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
}

async fn grants_per_second(mode: Mode, clients: usize, run_for: Duration) -> f64 {
    let tmp = tempfile::Builder::new()
        .prefix("foolock-bench-")
        .tempdir_in(bench_dir())
        .expect("cannot create a state directory for the benchmark");
    let engine = Engine::new(Rules::default());
    let clock = Arc::new(SystemClock);
    let store = match mode {
        Mode::Memory => None,
        Mode::PerChange => Some(Store::open(tmp.path(), Batching::PerChange).unwrap().0),
        Mode::GroupCommit => Some(Store::open(tmp.path(), Batching::GroupCommit).unwrap().0),
    };
    let running = LockService::start(engine, clock, store);
    let service = running.service().clone();
    let grants = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let (service, grants) = (service.clone(), grants.clone());
            tokio::spawn(async move {
                let (job, client) = (format!("job{i}"), format!("client{i}"));
                // Each task checks the time itself: without a disk to wait for, the loop never
                // yields, so a timer elsewhere might not get to run.
                while start.elapsed() < run_for {
                    service
                        .acquire(&job, &client, Duration::from_secs(30))
                        .await
                        .expect("own job is free");
                    grants.fetch_add(1, Ordering::Relaxed);
                    service.release(&job, &client).await.expect("holder");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = start.elapsed();
    running.shutdown().await;
    grants.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64()
}

fn main() {
    let run_for = if std::env::args().any(|a| a == "--bench") {
        RUN_FOR
    } else {
        SMOKE_RUN_FOR
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "new-holder grants/s (each followed by a release), state on {}",
        bench_dir().display()
    );
    print!("{:<18}", "clients");
    for c in CLIENTS {
        print!("{c:>12}");
    }
    println!();
    for mode in [Mode::Memory, Mode::PerChange, Mode::GroupCommit] {
        print!("{:<18}", mode.name());
        for clients in CLIENTS {
            let rate = runtime.block_on(grants_per_second(mode, clients, run_for));
            print!("{rate:>12.0}");
            use std::io::Write;
            let _ = std::io::stdout().flush();
        }
        println!();
    }
}
