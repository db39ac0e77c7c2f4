//! Crash safety with the real binary: clients hold, renew, release and contend for jobs over
//! HTTP while the server is killed with SIGKILL at random moments. After every restart each
//! lease a client was told it holds (a 200 with no release sent since) is still its own with
//! the same token, nobody else was granted it in between, and every new token is larger than
//! every token handed out before the crash. A released job stays released, and a renewal is
//! accepted only for a lease the client was granted (or may have been, by a request whose
//! reply was lost), with that lease's token.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use support::{Reply, Server, request};

const ROUNDS: usize = 30;
const CLIENTS: usize = 4;
const JOBS: usize = 8;
/// Long enough that no lease expires during the test: every loss would be the server's fault.
const TTL: &str = "2m";

/// What the clients know about one job.
#[derive(Debug, Clone, PartialEq)]
enum Known {
    /// Nobody holds it, as far as any reply said.
    Free,
    /// `client` got a 200 with `token` and has sent no release since.
    Held { client: usize, token: u64 },
    /// A request whose reply never came (or that is in flight) may have changed it.
    Unsure { op: u64 },
}

/// What one client may hold of one job, as far as the replies it got allow.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Claim {
    /// Nothing: it never got the job, or released it and was told so.
    None,
    /// It was granted the lease with this token and has not been told of a release since.
    Exact(u64),
    /// A request whose reply was lost may have granted it a lease, with a token above this
    /// (every token issued after the request was sent is above every token seen before).
    Above(u64),
}

struct Model {
    jobs: Vec<Known>,
    /// `claims[job][client]`
    claims: Vec<[Claim; CLIENTS]>,
    /// Largest token in any 200 from earlier server lives.
    max_before_crash: u64,
    /// Largest token in any 200 from this server life.
    max_this_life: u64,
    next_op: u64,
    violations: Vec<String>,
    grants: usize,
}

impl Model {
    fn violation(&mut self, what: String) {
        eprintln!("VIOLATION: {what}");
        self.violations.push(what);
    }

    /// The largest token any reply has shown so far.
    fn max_seen(&self) -> u64 {
        self.max_before_crash.max(self.max_this_life)
    }
}

/// A small xorshift generator: reproducible from the printed seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn job_name(j: usize) -> String {
    format!("job{j}")
}

/// One client's turn: renew or release a job it holds, or try to take another.
fn step(addr: SocketAddr, me: usize, rng: &mut Rng, model: &Mutex<Model>) -> bool {
    let j = rng.below(JOBS as u64) as usize;
    let job = job_name(j);
    let (known, op) = {
        let mut m = model.lock().unwrap();
        m.next_op += 1;
        (m.jobs[j].clone(), m.next_op)
    };
    let mine = matches!(known, Known::Held { client, .. } if client == me);
    if mine && rng.below(2) == 0 {
        // Release: from now until the reply, the job may or may not be free.
        model.lock().unwrap().jobs[j] = Known::Unsure { op };
        let reply = request(addr, "DELETE", &format!("/lock?client=c{me}&job={job}"));
        let mut m = model.lock().unwrap();
        match reply {
            Ok(r) if r.status == 200 => {
                if m.jobs[j] == (Known::Unsure { op }) {
                    m.jobs[j] = Known::Free;
                }
                m.claims[j][me] = Claim::None;
            }
            Ok(r) => m.violation(format!("c{me} held {job} but release got {r:?}")),
            Err(_) => return false,
        }
        return true;
    }
    if !mine && matches!(known, Known::Free | Known::Unsure { .. }) {
        model.lock().unwrap().jobs[j] = Known::Unsure { op };
    }
    // Some contenders wait in line, so grants also come from releases handing the job over.
    let wait = if !mine && rng.below(5) == 0 {
        "&wait=300ms"
    } else {
        ""
    };
    let seen_before = model.lock().unwrap().max_seen();
    let reply = request(
        addr,
        "POST",
        &format!("/lock?client=c{me}&job={job}&ttl={TTL}{wait}"),
    );
    let mut m = model.lock().unwrap();
    if reply.is_err() && m.claims[j][me] == Claim::None {
        m.claims[j][me] = Claim::Above(seen_before);
    }
    match reply {
        Ok(r) if r.status == 200 => record_grant(&mut m, me, j, &r),
        Ok(r) if r.status == 409 => {
            if mine {
                m.violation(format!("c{me} held {job} but its renewal got {r:?}"));
            }
            // Someone else's grant may not have reached the model yet; nothing to check.
        }
        Ok(r) => m.violation(format!("unexpected reply for c{me} on {job}: {r:?}")),
        Err(_) => return false,
    }
    true
}

fn record_grant(m: &mut Model, me: usize, j: usize, r: &Reply) {
    let token = r.token();
    let job = job_name(j);
    if r.message() == "renewed" {
        let claim = m.claims[j][me];
        let ok = match claim {
            Claim::None => false,
            Claim::Exact(t) => token == t,
            Claim::Above(t) => token > t,
        };
        if !ok {
            m.violation(format!(
                "c{me} renewed {job} with token {token}, but its claim on it was {claim:?}"
            ));
        }
    } else {
        // A new holder: nobody else can still hold the job.
        m.claims[j] = [Claim::None; CLIENTS];
    }
    m.claims[j][me] = Claim::Exact(token);
    match m.jobs[j].clone() {
        Known::Held { client, token: t } if client == me => {
            if r.message() != "renewed" || token != t {
                m.violation(format!("c{me} renewing {job} (token {t}) got {:?}", r.body));
            }
        }
        Known::Held { client, token: t } => m.violation(format!(
            "DOUBLE GRANT: {job} given to c{me} (token {token}) while c{client} holds token {t}"
        )),
        Known::Free | Known::Unsure { .. } => {}
    }
    if r.message() != "renewed" {
        m.grants += 1;
        if token <= m.max_before_crash {
            m.violation(format!(
                "token {token} for {job} is not above {} issued before the crash",
                m.max_before_crash
            ));
        }
    }
    m.max_this_life = m.max_this_life.max(token);
    m.jobs[j] = Known::Held { client: me, token };
}

/// Right after a restart: every known holder still holds its job, and nobody else gets it;
/// a job whose release was acknowledged, with no unanswered request since, is free.
fn check_after_restart(addr: SocketAddr, model: &Mutex<Model>) {
    let mut m = model.lock().unwrap();
    for j in 0..JOBS {
        if m.jobs[j] == Known::Free && m.claims[j].iter().all(|c| *c == Claim::None) {
            let job = job_name(j);
            let status = request(addr, "GET", &format!("/lock?job={job}")).unwrap();
            if status.body["holder"] != "" {
                m.violation(format!(
                    "after restart {job} should be free (its release was acknowledged), \
                     but: {status:?}"
                ));
            }
        }
    }
    for j in 0..JOBS {
        let Known::Held { client, token } = m.jobs[j].clone() else {
            continue;
        };
        let job = job_name(j);
        let intruder = request(addr, "POST", &format!("/lock?client=intruder&job={job}")).unwrap();
        if intruder.status != 409 || intruder.body["holder"] != format!("c{client}") {
            m.violation(format!(
                "after restart {job} should be held by c{client}, intruder got {intruder:?}"
            ));
        }
        let renew = request(
            addr,
            "POST",
            &format!("/lock?client=c{client}&job={job}&ttl={TTL}"),
        )
        .unwrap();
        if renew.status != 200 || renew.message() != "renewed" || renew.token() != token {
            m.violation(format!(
                "after restart c{client} could not renew {job} with token {token}: {renew:?}"
            ));
        }
    }
}

#[test]
fn holders_survive_sigkill_at_random_moments_and_tokens_keep_rising() {
    let started = Instant::now();
    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("crash test seed {seed}");
    let mut rng = Rng(seed);
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let model = Arc::new(Mutex::new(Model {
        jobs: vec![Known::Free; JOBS],
        claims: vec![[Claim::None; CLIENTS]; JOBS],
        max_before_crash: 0,
        max_this_life: 0,
        next_op: 0,
        violations: Vec::new(),
        grants: 0,
    }));
    let mut held_at_kill = 0;
    for round in 0..ROUNDS {
        let mut server = Server::builder().state_dir(&state).start();
        let addr = server.addr;
        check_after_restart(addr, &model);

        let clients: Vec<_> = (0..CLIENTS)
            .map(|me| {
                let model = Arc::clone(&model);
                let mut rng = Rng(rng.next() | 1);
                std::thread::spawn(move || while step(addr, me, &mut rng, &model) {})
            })
            .collect();
        // Kill somewhere in the next 30–400 ms, mid-request more often than not.
        std::thread::sleep(Duration::from_millis(30 + rng.below(370)));
        server.kill();
        for c in clients {
            c.join().unwrap();
        }
        let mut m = model.lock().unwrap();
        m.max_before_crash = m.max_before_crash.max(m.max_this_life);
        held_at_kill += m
            .jobs
            .iter()
            .filter(|k| matches!(k, Known::Held { .. }))
            .count();
        assert!(
            m.violations.is_empty(),
            "round {round} (seed {seed}): {:#?}",
            m.violations
        );
    }
    // A last restart to check the final round's holders.
    let server = Server::builder().state_dir(&state).start();
    check_after_restart(server.addr, &model);
    let m = model.lock().unwrap();
    assert!(m.violations.is_empty(), "seed {seed}: {:#?}", m.violations);
    eprintln!(
        "{ROUNDS} kills, {} grants, {held_at_kill} leases held at a kill, {:?}",
        m.grants,
        started.elapsed()
    );
    assert!(
        m.grants > ROUNDS,
        "the clients did too little to test anything"
    );
    assert!(held_at_kill > ROUNDS, "too few leases were held at a kill");
}
