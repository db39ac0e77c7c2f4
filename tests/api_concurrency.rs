//! Many clients contend for a few jobs over real HTTP: the server never grants a job to two
//! clients at once, and fencing tokens strictly increase.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{Server, http};

const TASKS: usize = 64;
const JOBS: usize = 4;
const RUN_FOR: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn contending_clients_never_share_a_job_and_tokens_increase() {
    let server = Server::start(&[]);
    let addr = server.addr;
    // One flag per job: set while some client believes it holds the job. Leases (60 s) far
    // outlast each hold, so the server must never grant a job whose flag is set.
    let busy: Arc<Vec<AtomicBool>> = Arc::new((0..JOBS).map(|_| AtomicBool::new(false)).collect());
    let grants: Arc<Mutex<Vec<(usize, u64, Instant)>>> = Arc::default();
    let violations: Arc<Mutex<Vec<String>>> = Arc::default();
    let deadline = Instant::now() + RUN_FOR;

    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (busy, grants, violations) = (busy.clone(), grants.clone(), violations.clone());
        tasks.push(tokio::spawn(async move {
            let client = format!("client{t}");
            let mut i = t;
            let mut granted = 0usize;
            while Instant::now() < deadline {
                let job = i % JOBS;
                i += 1;
                let reply = http(
                    addr,
                    "POST",
                    &format!("/lock?client={client}&job=job{job}&ttl=60s"),
                )
                .await;
                let body = reply.body;
                match reply.status {
                    200 => {
                        let token = body["token"].as_u64().expect("token");
                        if busy[job].swap(true, Ordering::SeqCst) {
                            violations
                                .lock()
                                .unwrap()
                                .push(format!("job{job} granted to {client} while held"));
                        }
                        grants.lock().unwrap().push((job, token, Instant::now()));
                        granted += 1;
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        busy[job].store(false, Ordering::SeqCst);
                        let released = http(
                            addr,
                            "DELETE",
                            &format!("/lock?client={client}&job=job{job}"),
                        )
                        .await;
                        assert_eq!(
                            released.status, 200,
                            "holder {client} could not release job{job}"
                        );
                    }
                    409 => {
                        assert_eq!(body["success"], false);
                        assert_ne!(body["holder"], client.as_str());
                    }
                    other => panic!("unexpected status {other}: {body}"),
                }
            }
            granted
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.expect("task");
    }

    let violations = violations.lock().unwrap();
    assert!(violations.is_empty(), "double grants: {violations:?}");
    let grants = grants.lock().unwrap();
    assert_eq!(grants.len(), total);
    assert!(total >= 50, "too few grants to mean anything: {total}");
    // Tokens are unique across all jobs, and per job they grow in grant order.
    let mut tokens: Vec<u64> = grants.iter().map(|g| g.1).collect();
    tokens.sort_unstable();
    tokens.dedup();
    assert_eq!(tokens.len(), grants.len(), "a token was issued twice");
    let mut per_job: HashMap<usize, Vec<(Instant, u64)>> = HashMap::new();
    for &(job, token, at) in grants.iter() {
        per_job.entry(job).or_default().push((at, token));
    }
    for (job, mut list) in per_job {
        list.sort();
        assert!(
            list.windows(2).all(|w| w[0].1 < w[1].1),
            "tokens of job{job} did not increase in grant order"
        );
    }
    println!("{total} grants by {TASKS} clients on {JOBS} jobs in {RUN_FOR:?}");
}
