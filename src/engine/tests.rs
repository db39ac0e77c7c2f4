//! Engine rules on a virtual clock, at exact boundaries.

use super::*;

const T0: u64 = 1_000;

/// A virtual clock: `at(s)` is `s` seconds after an arbitrary start, awake the whole time.
fn at_ms(ms: u64) -> Now {
    let since = Duration::from_millis(T0 * 1000 + ms);
    Now {
        mono: Mono::from_duration(since),
        awake: since,
        wall: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000) + since,
    }
}

fn at(s: u64) -> Now {
    at_ms(s * 1000)
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn engine() -> Engine {
    Engine::new(Rules {
        grace: secs(5),
        ..Rules::default()
    })
}

fn kind(r: Result<Grant, Denied>) -> GrantKind {
    r.expect("granted").kind
}

#[test]
fn free_job_is_acquired_with_token_one() {
    let mut e = engine();
    let g = e.acquire("backup", "laptop1", secs(10), at(0)).unwrap();
    assert_eq!(g.kind, GrantKind::Acquired);
    assert_eq!(g.lease.token, 1);
    assert_eq!(&*g.lease.holder, "laptop1");
    assert_eq!(g.lease.expires, at(10).mono);
    assert_eq!(g.lease.grace_until, at(15).mono);
}

#[test]
fn holder_renews_and_keeps_token_and_acquired_at() {
    let mut e = engine();
    let first = e.acquire("backup", "a", secs(10), at(0)).unwrap();
    let g = e.acquire("backup", "a", secs(20), at(4)).unwrap();
    assert_eq!(g.kind, GrantKind::Renewed);
    assert_eq!(g.lease.token, first.lease.token);
    assert_eq!(g.lease.acquired_at, first.lease.acquired_at);
    assert_eq!(g.lease.expires, at(24).mono);
}

#[test]
fn other_client_is_refused_until_the_instant_of_expiry() {
    let mut e = engine();
    e.acquire("backup", "a", secs(10), at(0)).unwrap();
    assert!(matches!(
        e.acquire("backup", "b", secs(10), at_ms(9_999)),
        Err(Denied::Held(l)) if &*l.holder == "a"
    ));
    // At t = expiry the lease is no longer held: grace begins.
    assert!(matches!(
        e.acquire("backup", "b", secs(10), at(10)),
        Err(Denied::Grace(_))
    ));
}

#[test]
fn grace_blocks_others_until_its_end_then_takeover() {
    let mut e = engine();
    e.acquire("backup", "a", secs(10), at(0)).unwrap();
    assert!(matches!(
        e.acquire("backup", "b", secs(10), at_ms(14_999)),
        Err(Denied::Grace(_))
    ));
    let g = e.acquire("backup", "b", secs(10), at(15)).unwrap();
    assert_eq!(
        g.kind,
        GrantKind::TookOver {
            previous: "a".into(),
            lapsed_for: secs(5)
        }
    );
    assert_eq!(g.lease.token, 2);
}

#[test]
fn a_renewed_lease_keeps_others_out_for_the_grace_period_after_its_new_expiry() {
    let mut e = engine();
    e.acquire("j", "a", secs(10), at(0)).unwrap();
    let renewed = e.acquire("j", "a", secs(10), at(8)).unwrap();
    assert_eq!(renewed.lease.expires, at(18).mono);
    assert_eq!(renewed.lease.grace_until, at(23).mono);
    assert!(matches!(
        e.acquire("j", "b", secs(10), at_ms(17_999)),
        Err(Denied::Held(_))
    ));
    assert!(matches!(
        e.acquire("j", "b", secs(10), at(18)),
        Err(Denied::Grace(_))
    ));
    assert!(matches!(
        e.acquire("j", "b", secs(10), at_ms(22_999)),
        Err(Denied::Grace(_))
    ));
    assert!(matches!(
        kind(e.acquire("j", "b", secs(10), at(23))),
        GrantKind::TookOver { .. }
    ));
}

#[test]
fn a_waiter_gets_a_renewed_lease_only_when_its_grace_ends() {
    let mut e = engine();
    e.acquire("j", "a", secs(10), at(0)).unwrap();
    e.acquire("j", "a", secs(10), at(8)).unwrap();
    let WaitOutcome::Queued(w) = e.acquire_or_wait("j", "b", secs(10), at(9)) else {
        panic!("b should queue")
    };
    e.advance(at_ms(22_999));
    assert!(e.take_woken().is_empty(), "served during the grace period");
    e.advance(at(23));
    assert_eq!(e.take_woken()[0].waiter, w);
}

#[test]
fn previous_holder_may_renew_during_grace_and_after_lapse() {
    let mut e = engine();
    e.acquire("backup", "a", secs(10), at(0)).unwrap();
    assert_eq!(
        kind(e.acquire("backup", "a", secs(10), at(12))),
        GrantKind::Renewed
    );
    // Lapsed long ago, nobody else came: still renewable with the same token.
    let g = e.acquire("backup", "a", secs(10), at(3_600)).unwrap();
    assert_eq!(g.kind, GrantKind::Renewed);
    assert_eq!(g.lease.token, 1);
}

#[test]
fn release_frees_at_once_without_grace() {
    let mut e = engine();
    e.acquire("backup", "a", secs(10), at(0)).unwrap();
    assert_eq!(e.release("backup", "b", at(1)), Err(NotHolder));
    assert!(!e.is_empty());
    e.release("backup", "a", at(1)).unwrap();
    assert!(e.is_empty(), "a released job leaves memory");
    assert_eq!(
        kind(e.acquire("backup", "b", secs(10), at(1))),
        GrantKind::Acquired
    );
}

#[test]
fn release_of_unknown_job_or_after_takeover_is_not_holder() {
    let mut e = engine();
    assert_eq!(e.release("nothing", "a", at(0)), Err(NotHolder));
    e.acquire("backup", "a", secs(1), at(0)).unwrap();
    e.acquire("backup", "b", secs(10), at(7)).unwrap();
    assert_eq!(e.release("backup", "a", at(8)), Err(NotHolder));
}

#[test]
fn holder_may_release_an_expired_lease() {
    let mut e = engine();
    e.acquire("backup", "a", secs(1), at(0)).unwrap();
    assert!(e.release("backup", "a", at(100)).is_ok());
}

#[test]
fn get_never_creates_entries_and_reports_states() {
    let mut e = engine();
    assert_eq!(e.get("backup", at(0)), None);
    assert!(e.is_empty());
    e.acquire("backup", "a", secs(10), at(0)).unwrap();
    let lease = e.get("backup", at(0)).unwrap();
    assert_eq!(lease.state(at(9).mono), LeaseState::Held);
    assert_eq!(lease.state(at(10).mono), LeaseState::Grace);
    assert_eq!(lease.state(at(15).mono), LeaseState::Expired);
    // A lapsed job keeps its last holder.
    assert_eq!(&*e.get("backup", at(100)).unwrap().holder, "a");
}

#[test]
fn tokens_strictly_increase_across_jobs_and_holders() {
    let mut e = engine();
    let mut last = 0;
    for (i, job) in ["a", "b", "a", "c"].iter().enumerate() {
        let t = at(100 * i as u64);
        let g = e.acquire(job, &format!("client{i}"), secs(1), t).unwrap();
        assert!(g.lease.token > last);
        last = g.lease.token;
        let renew = e.acquire(job, &format!("client{i}"), secs(1), t).unwrap();
        assert_eq!(renew.lease.token, last);
    }
    assert_eq!(e.last_token(), last);
}

#[test]
fn force_release_frees_and_old_holder_gets_a_new_token() {
    let mut e = engine();
    let first = e.acquire("backup", "a", secs(10), at(0)).unwrap();
    let removed = e.force_release("backup", at(1)).unwrap();
    assert_eq!(&*removed.holder, "a");
    assert_eq!(e.force_release("backup", at(1)), None);
    let again = e.acquire("backup", "a", secs(10), at(2)).unwrap();
    assert_eq!(again.kind, GrantKind::Acquired);
    assert!(again.lease.token > first.lease.token);
}

#[test]
fn zero_grace_makes_a_lease_free_at_expiry() {
    let mut e = Engine::new(Rules {
        grace: Duration::ZERO,
        ..Rules::default()
    });
    e.acquire("j", "a", secs(10), at(0)).unwrap();
    assert!(matches!(
        e.acquire("j", "b", secs(1), at_ms(9_999)),
        Err(Denied::Held(_))
    ));
    assert!(matches!(
        kind(e.acquire("j", "b", secs(1), at(10))),
        GrantKind::TookOver { .. }
    ));
}

#[test]
fn ttl_range_is_checked() {
    let rules = Rules::default();
    assert!(rules.check_ttl(Duration::ZERO).is_err());
    assert!(rules.check_ttl(Duration::from_nanos(1)).is_ok());
    assert!(rules.check_ttl(secs(24 * 3600)).is_ok());
    let err = rules.check_ttl(secs(24 * 3600 + 1)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "ttl must be greater than 0 and at most 24h"
    );
}

#[test]
fn names_are_validated() {
    assert_eq!(validate_name(""), Err(NameError::Empty));
    assert!(validate_name(&"x".repeat(256)).is_ok());
    assert_eq!(validate_name(&"x".repeat(257)), Err(NameError::TooLong));
    assert_eq!(validate_name("a\nb"), Err(NameError::Control));
    assert_eq!(validate_name("a\u{7f}"), Err(NameError::Control));
    assert!(validate_name("mäc mini").is_ok());
    assert!(validate_name("photos/2026").is_ok());
}

#[test]
fn full_table_evicts_oldest_expired_first_then_refuses() {
    let mut e = Engine::new(Rules {
        max_jobs: 3,
        grace: secs(1),
        ..Rules::default()
    });
    e.acquire("old", "a", secs(1), at(0)).unwrap();
    e.acquire("older", "a", secs(1), at(0)).unwrap();
    e.acquire("live", "a", secs(1000), at(0)).unwrap();
    // Renew "old" so "older" lapsed first.
    e.acquire("old", "a", secs(1), at(1)).unwrap();
    e.acquire("new1", "b", secs(1000), at(10)).unwrap();
    assert!(
        e.get("older", at(10)).is_none(),
        "oldest expired entry evicted"
    );
    assert!(e.get("old", at(10)).is_some());
    e.acquire("new2", "b", secs(1000), at(10)).unwrap();
    assert!(e.get("old", at(10)).is_none());
    // Three live leases: the next new job is refused and nothing else changes.
    let before = e.list(at(10));
    assert_eq!(
        e.acquire("new3", "b", secs(10), at(10)),
        Err(Denied::Full { max_jobs: 3 })
    );
    assert_eq!(e.list(at(10)), before);
    // Existing jobs still renew.
    assert!(e.acquire("live", "a", secs(10), at(10)).is_ok());
}

#[test]
fn expired_entries_are_forgotten_after_retention() {
    let mut e = Engine::new(Rules {
        retention: secs(100),
        ..Rules::default()
    });
    e.acquire("j", "a", secs(10), at(0)).unwrap();
    // Lapsed at 15 (10 + 5 grace); forgotten at 115.
    assert!(e.get("j", at(114)).is_some());
    assert!(e.get("j", at(115)).is_none());
    assert_eq!(e.next_deadline(), None, "nothing left to wake up for");
}

#[test]
fn next_deadline_tracks_expiry_grace_and_retention() {
    let mut e = engine();
    assert_eq!(e.next_deadline(), None);
    e.acquire("j", "a", secs(10), at(0)).unwrap();
    assert_eq!(e.next_deadline(), Some(at(10).mono));
    e.advance(at(10));
    assert_eq!(e.next_deadline(), Some(at(15).mono));
    e.advance(at(15));
    assert_eq!(e.next_deadline(), Some(at(15).mono + e.rules().retention));
    e.release("j", "a", at(16)).unwrap();
    assert_eq!(e.next_deadline(), None);
}

/// A renewal that moves the deadline later leaves the entry where it sits in the deadline
/// set: the timer wakes at the old deadline once, finds the new one and sleeps again.
#[test]
fn a_renewal_to_a_later_deadline_is_found_when_the_old_one_comes() {
    let mut e = engine();
    e.acquire("j", "a", secs(10), at(0)).unwrap();
    for s in 1..=100 {
        e.acquire("j", "a", secs(10), at_ms(s * 50)).unwrap();
    }
    assert_eq!(
        e.deadlines.len(),
        1,
        "renewals do not add to the deadline set"
    );
    assert_eq!(
        e.next_deadline(),
        Some(at(10).mono),
        "early, which is allowed"
    );
    e.take_events();
    e.advance(at(10));
    assert!(
        e.take_events().is_empty(),
        "renewed until 15: nothing ends at 10"
    );
    assert_eq!(e.next_deadline(), Some(at(15).mono));
    assert!(e.acquire("j", "b", secs(10), at_ms(14_999)).is_err());
    // Held until 15, grace until 20: free to others at 20 and not before.
    assert!(e.acquire("j", "b", secs(10), at_ms(19_999)).is_err());
    assert_eq!(
        kind(e.acquire("j", "b", secs(10), at(20))),
        GrantKind::TookOver {
            previous: Arc::from("a"),
            lapsed_for: secs(5),
        }
    );
}

/// One advance across a renewed lease's old deadline, its new one and the end of its grace
/// ends both phases, in order, at their own instants.
#[test]
fn one_advance_past_several_moved_deadlines_ends_each_phase_in_order() {
    let mut e = engine();
    e.acquire("renewed", "a", secs(10), at(0)).unwrap();
    e.acquire("renewed", "a", secs(10), at(5)).unwrap();
    e.acquire("other", "b", secs(12), at(5)).unwrap();
    e.take_events();
    e.advance(at(30));
    let seen: Vec<(&str, EventKind)> = e
        .events()
        .iter()
        .map(|ev| (&*ev.job, ev.kind.clone()))
        .collect();
    assert_eq!(
        seen,
        [
            ("renewed", EventKind::Expired),
            ("other", EventKind::Expired),
        ]
    );
    assert_eq!(
        e.live_jobs(),
        0,
        "both grace periods (20 and 22) ended by 30"
    );
    assert_eq!(e.next_deadline(), Some(at(20).mono + e.rules().retention));
}

/// A renewal with a shorter ttl ends sooner than where the entry sat: it moves back.
#[test]
fn a_renewal_with_a_shorter_ttl_ends_at_its_own_earlier_deadline() {
    let mut e = engine();
    e.acquire("j", "a", secs(100), at(0)).unwrap();
    e.acquire("j", "a", secs(10), at(1)).unwrap();
    assert_eq!(e.next_deadline(), Some(at(11).mono));
    e.take_events();
    e.advance(at(11));
    let kinds: Vec<EventKind> = e.take_events().into_iter().map(|ev| ev.kind).collect();
    assert_eq!(kinds, [EventKind::Expired]);
    assert!(e.acquire("j", "b", secs(10), at_ms(15_999)).is_err());
    assert!(e.acquire("j", "b", secs(10), at(16)).is_ok());
}

#[test]
fn events_describe_each_change() {
    let mut e = engine();
    e.acquire("j", "a", secs(10), at(0)).unwrap();
    e.acquire("j", "a", secs(10), at(1)).unwrap();
    e.advance(at(11));
    e.acquire("j", "b", secs(10), at(20)).unwrap();
    e.release("j", "b", at(21)).unwrap();
    e.acquire("j", "c", secs(10), at(22)).unwrap();
    e.force_release("j", at(23)).unwrap();
    let kinds: Vec<_> = e.take_events().into_iter().map(|ev| ev.kind).collect();
    assert_eq!(
        kinds,
        vec![
            EventKind::Acquired,
            EventKind::Renewed,
            EventKind::Expired,
            EventKind::TakenOver {
                previous: "a".into(),
                previous_token: 1,
                lapsed_for: secs(9)
            },
            EventKind::Released,
            EventKind::Acquired,
            EventKind::ForceReleased,
        ]
    );
    assert!(e.take_events().is_empty());
}

#[test]
fn refused_requests_change_nothing_and_emit_nothing() {
    let mut e = engine();
    e.acquire("j", "a", secs(10), at(0)).unwrap();
    e.take_events();
    let before = e.list(at(1));
    let _ = e.acquire("j", "b", secs(10), at(1));
    let _ = e.release("j", "b", at(1));
    let _ = e.get("other", at(1));
    assert_eq!(e.list(at(1)), before);
    assert!(e.take_events().is_empty());
}

#[test]
fn waiters_are_granted_in_arrival_order_on_release() {
    let mut e = engine();
    e.acquire("j", "a", secs(10), at(0)).unwrap();
    let WaitOutcome::Queued(w1) = e.acquire_or_wait("j", "b", secs(10), at(1)) else {
        panic!("b should queue")
    };
    let WaitOutcome::Queued(w2) = e.acquire_or_wait("j", "c", secs(10), at(1)) else {
        panic!("c should queue")
    };
    assert_eq!(e.waiting(), 2);
    assert_eq!(e.waiting_for("j"), 2);
    assert_eq!(e.waiting_for("other"), 0);
    e.release("j", "a", at(2)).unwrap();
    let woken = e.take_woken();
    assert_eq!(woken.len(), 1);
    assert_eq!(woken[0].waiter, w1);
    assert_eq!(&*woken[0].grant.lease.holder, "b");
    assert_eq!(woken[0].grant.kind, GrantKind::Acquired);
    e.release("j", "b", at(3)).unwrap();
    let woken = e.take_woken();
    assert_eq!(woken[0].waiter, w2);
    assert_eq!(e.waiting(), 0);
}

#[test]
fn three_or_more_waiters_are_granted_strictly_in_arrival_order() {
    // With two waiters, taking the first and moving the last into its place still looks
    // fair; only a third shows whether the queue keeps its order.
    let mut e = engine();
    e.acquire("j", "a", secs(10), at(0)).unwrap();
    let mut queued = Vec::new();
    for client in ["b", "c", "d", "e"] {
        let WaitOutcome::Queued(w) = e.acquire_or_wait("j", client, secs(10), at(1)) else {
            panic!("{client} should queue")
        };
        queued.push((w, client));
    }
    let mut holder = "a";
    for (i, (w, client)) in queued.iter().enumerate() {
        e.release("j", holder, at(2 + i as u64)).unwrap();
        let woken = e.take_woken();
        assert_eq!(woken.len(), 1, "one grant per release");
        assert_eq!(
            (woken[0].waiter, &*woken[0].grant.lease.holder),
            (*w, *client)
        );
        assert_eq!(e.waiting_for("j"), queued.len() - i - 1);
        holder = client;
    }
}

#[test]
fn waiter_is_not_granted_during_grace_but_right_after_it() {
    let mut e = engine();
    e.acquire("j", "a", secs(10), at(0)).unwrap();
    let WaitOutcome::Queued(w) = e.acquire_or_wait("j", "b", secs(10), at(1)) else {
        panic!()
    };
    e.advance(at_ms(14_999));
    assert!(e.take_woken().is_empty());
    e.advance(at(15));
    let woken = e.take_woken();
    assert_eq!(woken[0].waiter, w);
    assert!(matches!(woken[0].grant.kind, GrantKind::TookOver { .. }));
}

#[test]
fn previous_holder_renewing_in_grace_keeps_waiters_waiting() {
    let mut e = engine();
    e.acquire("j", "a", secs(10), at(0)).unwrap();
    e.acquire_or_wait("j", "b", secs(10), at(1));
    e.acquire("j", "a", secs(10), at(12)).unwrap();
    e.advance(at(20));
    assert!(e.take_woken().is_empty());
    assert_eq!(e.waiting(), 1);
}

#[test]
fn cancelled_waiter_is_never_granted() {
    let mut e = engine();
    e.acquire("j", "a", secs(10), at(0)).unwrap();
    let WaitOutcome::Queued(w1) = e.acquire_or_wait("j", "b", secs(10), at(1)) else {
        panic!()
    };
    let WaitOutcome::Queued(w2) = e.acquire_or_wait("j", "c", secs(10), at(1)) else {
        panic!()
    };
    assert!(e.cancel_wait(w1));
    assert!(!e.cancel_wait(w1));
    e.release("j", "a", at(2)).unwrap();
    let woken = e.take_woken();
    assert_eq!(woken.len(), 1);
    assert_eq!(woken[0].waiter, w2);
    assert_eq!(&*e.get("j", at(2)).unwrap().holder, "c");
}

#[test]
fn waiting_for_a_free_job_grants_at_once() {
    let mut e = engine();
    assert!(matches!(
        e.acquire_or_wait("j", "a", secs(10), at(0)),
        WaitOutcome::Granted(_)
    ));
}

#[test]
fn waiter_count_is_bounded() {
    let mut e = Engine::new(Rules {
        max_waiters: 1,
        ..Rules::default()
    });
    e.acquire("j", "a", secs(10), at(0)).unwrap();
    assert!(matches!(
        e.acquire_or_wait("j", "b", secs(1), at(0)),
        WaitOutcome::Queued(_)
    ));
    assert_eq!(
        e.acquire_or_wait("j", "c", secs(1), at(0)),
        WaitOutcome::Denied(Denied::TooManyWaiters { max_waiters: 1 })
    );
}

#[test]
fn sleep_gives_leases_that_lapsed_during_it_a_fresh_grace_window() {
    let mut e = engine();
    e.acquire("j", "a", secs(10), at(0)).unwrap();
    e.acquire("k", "a", secs(1000), at(0)).unwrap();
    // The machine sleeps from t=5 to t=65: the awake clock stands still.
    let mut woke = at(65);
    woke.awake = at(5).awake;
    e.advance(at(5));
    assert!(matches!(
        e.acquire("j", "b", secs(10), woke),
        Err(Denied::Grace(_))
    ));
    let lease = e.get("j", woke).unwrap();
    assert_eq!(lease.grace_until, woke.mono + secs(5));
    // Leases still running are untouched.
    assert_eq!(e.get("k", woke).unwrap().grace_until, at(1005).mono);
    // After the fresh window, others may take it.
    let mut later = at(70);
    later.awake = woke.awake + secs(5);
    assert!(e.acquire("j", "b", secs(10), later).is_ok());
}

#[test]
fn wall_clock_jumps_move_no_deadline() {
    let mut e = engine();
    e.acquire("j", "a", secs(10), at(0)).unwrap();
    let mut jumped = at(5);
    jumped.wall += secs(3600);
    assert!(matches!(
        e.acquire("j", "b", secs(10), jumped),
        Err(Denied::Held(_))
    ));
    let mut back = at(6);
    back.wall -= secs(7200);
    assert!(matches!(
        e.acquire("j", "b", secs(10), back),
        Err(Denied::Held(_))
    ));
}

#[test]
fn quarantine_refuses_every_grant_until_it_ends() {
    let mut e = engine();
    e.quarantine(at(30).mono);
    assert!(matches!(
        e.acquire("j", "a", secs(10), at(29)),
        Err(Denied::Quarantined { .. })
    ));
    assert!(e.acquire("j", "a", secs(10), at(30)).is_ok());
}

#[test]
fn restore_counts_leases_held_until_later_of_saved_expiry_and_restart_plus_ttl() {
    let mut before = engine();
    before.acquire("short", "a", secs(10), at(0)).unwrap();
    before.acquire("long", "b", secs(600), at(0)).unwrap();
    let saved = before.export(at(1));
    assert_eq!(saved.last_token, 2);

    // Restart 5 s later on a machine whose monotonic clock restarted from a low value.
    let restart = Now {
        mono: Mono::from_duration(secs(7)),
        awake: secs(7),
        wall: at(6).wall,
    };
    let mut after = engine();
    assert_eq!(after.restore(saved, restart), 0);
    let short = after.get("short", restart).unwrap();
    // Saved expiry was 4 s away; restart + ttl is 10 s away: the later wins.
    assert_eq!(short.expires, restart.mono + secs(10));
    let long = after.get("long", restart).unwrap();
    assert_eq!(long.expires, restart.mono + secs(600));
    assert!(matches!(
        after.acquire("short", "x", secs(1), restart),
        Err(Denied::Held(_))
    ));
    assert_eq!(
        kind(after.acquire("short", "a", secs(10), restart)),
        GrantKind::Renewed
    );
    let next = after.acquire("new", "c", secs(1), restart).unwrap();
    assert_eq!(next.lease.token, 3, "tokens never go backwards");
}

#[test]
fn restore_skips_invalid_entries_and_keeps_token_above_all_saved() {
    let saved = SavedState {
        last_token: 3,
        leases: vec![
            SavedLease {
                job: "ok".into(),
                holder: "a".into(),
                run: None,
                token: 9,
                ttl_ms: 1000,
                acquired_at_ms: 0,
                expires_at_ms: 0,
            },
            SavedLease {
                job: "".into(),
                holder: "a".into(),
                run: None,
                token: 1,
                ttl_ms: 1000,
                acquired_at_ms: 0,
                expires_at_ms: 0,
            },
            SavedLease {
                job: "zero".into(),
                holder: "a".into(),
                run: None,
                token: 2,
                ttl_ms: 0,
                acquired_at_ms: 0,
                expires_at_ms: 0,
            },
            SavedLease {
                job: "bad-holder".into(),
                holder: "a\u{1}".into(),
                run: None,
                token: 3,
                ttl_ms: 1000,
                acquired_at_ms: 0,
                expires_at_ms: 0,
            },
            SavedLease {
                job: "bad-run".into(),
                holder: "a".into(),
                run: Some("".into()),
                token: 3,
                ttl_ms: 1000,
                acquired_at_ms: 0,
                expires_at_ms: 0,
            },
        ],
        quarantine_until_ms: None,
        quarantine_left_ms: None,
    };
    let mut e = engine();
    assert_eq!(e.restore(saved, at(0)), 4);
    assert_eq!(e.len(), 1);
    assert_eq!(e.acquire("n", "b", secs(1), at(0)).unwrap().lease.token, 10);
}

#[test]
fn restore_caps_expiry_from_a_wall_clock_far_ahead() {
    let saved = SavedState {
        last_token: 1,
        leases: vec![SavedLease {
            job: "j".into(),
            holder: "a".into(),
            run: None,
            token: 1,
            ttl_ms: 1000,
            acquired_at_ms: 0,
            expires_at_ms: u64::MAX / 2,
        }],
        quarantine_until_ms: None,
        quarantine_left_ms: None,
    };
    let mut e = engine();
    e.restore(saved, at(0));
    let lease = e.get("j", at(0)).unwrap();
    assert_eq!(lease.expires, at(0).mono + e.rules().max_ttl);
}

/// One saved lease of `ttl_s` seconds whose saved expiry is `expires_in_s` after `now`.
fn saved_one(job: &str, token: u64, ttl_s: u64, now: Now, expires_in_s: i64) -> SavedState {
    let wall_ms = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };
    SavedState {
        last_token: token,
        leases: vec![SavedLease {
            job: job.into(),
            holder: "a".into(),
            run: None,
            token,
            ttl_ms: ttl_s * 1000,
            acquired_at_ms: 0,
            expires_at_ms: (wall_ms(now.wall) + expires_in_s * 1000) as u64,
        }],
        quarantine_until_ms: None,
        quarantine_left_ms: None,
    }
}

#[test]
fn restore_keeps_a_saved_expiry_later_than_restart_plus_ttl() {
    let mut e = engine();
    e.restore(saved_one("j", 1, 10, at(0), 60), at(0));
    assert_eq!(e.get("j", at(0)).unwrap().expires, at(60).mono);
    assert!(matches!(
        e.acquire("j", "b", secs(1), at(59)),
        Err(Denied::Held(_))
    ));
}

#[test]
fn restore_holds_a_lapsed_lease_for_a_fresh_ttl_because_its_renewal_may_be_unsaved() {
    // Saved expiry an hour ago: the holder may have renewed (lazily saved) right before the
    // crash, so nobody else gets the job before restart + ttl (+ grace).
    let mut e = engine();
    e.restore(saved_one("j", 4, 10, at(0), -3600), at(0));
    assert!(matches!(
        e.acquire("j", "b", secs(1), at_ms(9_999)),
        Err(Denied::Held(_))
    ));
    assert!(matches!(
        e.acquire("j", "b", secs(1), at_ms(14_999)),
        Err(Denied::Grace(_))
    ));
    assert_eq!(
        kind(e.acquire("j", "a", secs(10), at(12))),
        GrantKind::Renewed
    );
}

#[test]
fn restore_ignores_a_wall_clock_that_jumped_forward_while_down() {
    let mut before = engine();
    before.acquire("j", "a", secs(30), at(0)).unwrap();
    let saved = before.export(at(1));
    // The wall clock jumped a day ahead during the reboot: the saved expiry looks long past.
    let mut restart = at(2);
    restart.wall += secs(24 * 3600);
    let mut after = engine();
    after.restore(saved, restart);
    assert_eq!(
        after.get("j", restart).unwrap().expires,
        restart.mono + secs(30)
    );
}

#[test]
fn tokens_never_go_backwards_across_many_restarts() {
    let mut e = engine();
    let mut last = 0;
    for round in 0..5u64 {
        let t = at(round * 100);
        let g = e.acquire(&format!("job{round}"), "a", secs(5), t).unwrap();
        assert!(g.lease.token > last, "round {round}");
        last = g.lease.token;
        // Release everything so the saved leases carry no tokens: only the counter remains.
        e.release(&format!("job{round}"), "a", t).unwrap();
        let saved = e.export(t);
        assert!(saved.leases.is_empty());
        e = engine();
        e.restore(saved, at(round * 100 + 1));
    }
    assert_eq!(e.last_token(), last);
}

#[test]
fn restore_never_lowers_a_counter_already_above_the_saved_one() {
    let mut e = engine();
    for i in 0..5 {
        e.acquire(&format!("j{i}"), "a", secs(5), at(0)).unwrap();
    }
    e.restore(saved_one("old", 2, 10, at(0), 5), at(0));
    assert_eq!(e.last_token(), 5);
}

#[test]
fn quarantine_survives_export_and_restore() {
    let mut e = engine();
    e.quarantine(at(30).mono);
    let saved = e.export(at(1));
    assert!(saved.quarantine_until_ms.is_some());
    let mut after = engine();
    // Saved with 29 s left; the 9 s the server was down are not credited (no clock can be
    // trusted to measure them), so it runs 29 s from the restart.
    after.restore(saved, at(10));
    assert!(matches!(
        after.acquire("j", "a", secs(1), at_ms(38_999)),
        Err(Denied::Quarantined { .. })
    ));
    assert!(after.acquire("j", "a", secs(1), at(39)).is_ok());
    // An ended quarantine is not saved again.
    assert_eq!(after.export(at(40)).quarantine_until_ms, None);
}

#[test]
fn restored_quarantine_is_not_cut_short_by_a_lowered_max_ttl() {
    let mut e = engine();
    e.quarantine(at(36_000).mono);
    let saved = e.export(at(0));
    let mut after = Engine::new(Rules {
        max_ttl: secs(3600),
        ..Rules::default()
    });
    after.restore(saved, at(0));
    assert_eq!(after.quarantined_until(at(0).mono), Some(at(36_000).mono));
}

#[test]
fn restored_quarantine_from_a_wall_clock_far_ahead_is_capped_at_what_was_left() {
    let mut e = engine();
    e.quarantine(at(60).mono);
    let mut saved = e.export(at(0));
    saved.quarantine_until_ms = Some(u64::MAX / 2);
    let mut after = engine();
    after.restore(saved, at(0));
    assert_eq!(after.quarantined_until(at(0).mono), Some(at(60).mono));
}

#[test]
fn restored_quarantine_is_capped_like_expiries() {
    let saved = SavedState {
        quarantine_until_ms: Some(u64::MAX / 2),
        ..SavedState::default()
    };
    let mut e = engine();
    e.restore(saved, at(0));
    let cap = at(0).mono + e.rules().max_ttl + e.rules().grace;
    assert_eq!(e.quarantined_until(at(0).mono), Some(cap));
}

fn rules() -> Rules {
    engine().rules().clone()
}

#[test]
fn restart_with_nothing_saved_starts_fresh_and_grants_at_once() {
    let (mut e, restored) = Engine::after_restart(rules(), Found::Nothing, at(0));
    assert_eq!(restored, Restored::Fresh);
    assert_eq!(e.acquire("j", "a", secs(10), at(0)).unwrap().lease.token, 1);
}

#[test]
fn restart_from_a_saved_table_reports_what_it_kept_and_skipped() {
    let mut saved = saved_one("j", 4, 10, at(0), 5);
    let mut bad = saved.leases[0].clone();
    bad.job = String::new();
    saved.leases.push(bad);
    let (mut e, restored) = Engine::after_restart(rules(), Found::Saved(saved), at(0));
    assert_eq!(
        restored,
        Restored::Saved {
            leases: 1,
            skipped: 1
        }
    );
    assert!(matches!(
        e.acquire("j", "b", secs(1), at(0)),
        Err(Denied::Held(_))
    ));
}

#[test]
fn restart_after_a_loss_refuses_grants_until_the_longest_recorded_ttl_plus_grace() {
    let marks = Watermarks {
        max_ttl_ms: 600_000,
        token_ceiling: 1007,
    };
    let (mut e, restored) = Engine::after_restart(rules(), Found::Lost(Some(marks)), at(0));
    assert_eq!(restored, Restored::Quarantined { length: secs(605) });
    assert!(matches!(
        e.acquire("j", "a", secs(10), at_ms(604_999)),
        Err(Denied::Quarantined { .. })
    ));
    let grant = e.acquire("j", "a", secs(10), at(605)).unwrap();
    assert_eq!(grant.lease.token, 1008, "tokens resume above the ceiling");
}

#[test]
fn restart_after_a_loss_waits_out_at_least_the_default_ttl_plus_grace() {
    let short = Watermarks {
        max_ttl_ms: 1000,
        token_ceiling: 0,
    };
    for marks in [None, Some(short)] {
        let (mut e, restored) = Engine::after_restart(rules(), Found::Lost(marks), at(0));
        assert_eq!(restored, Restored::Quarantined { length: secs(35) });
        assert!(matches!(
            e.acquire("j", "a", secs(10), at_ms(34_999)),
            Err(Denied::Quarantined { .. })
        ));
        assert_eq!(
            e.acquire("j", "a", secs(10), at(35)).unwrap().lease.token,
            1
        );
    }
}

#[test]
fn every_quarantine_lasts_a_ttl_plus_grace() {
    assert_eq!(unseen_lease_may_run(secs(600), &rules()), secs(605));
}

/// `at(s)` with the awake clock frozen since `asleep_at` (the machine slept in between).
fn woke_at(s: u64, asleep_at: u64) -> Now {
    let mut now = at(s);
    now.awake = at(asleep_at).awake;
    now
}

#[test]
fn sleep_of_one_second_or_less_is_not_sleep() {
    let mut e = engine();
    e.acquire("j", "a", secs(10), at(0)).unwrap();
    e.advance(at(11)); // in grace until 15
    // Exactly one second of suspend during the grace period: had it counted as sleep, the
    // grace would now end at 12 + 5 = 17.
    let woke = woke_at(12, 11);
    e.advance(woke);
    assert_eq!(e.get("j", woke).unwrap().grace_until, at(15).mono);
    assert!(matches!(
        kind(e.acquire("j", "b", secs(1), at(15))),
        GrantKind::TookOver { .. }
    ));
}

#[test]
fn sleep_just_over_one_second_is_sleep() {
    let mut e = engine();
    e.acquire("j", "a", secs(10), at(0)).unwrap();
    e.advance(at(11)); // in grace until 15
    let mut woke = at_ms(12_001);
    woke.awake = at(11).awake;
    e.advance(woke);
    assert_eq!(e.get("j", woke).unwrap().grace_until, woke.mono + secs(5));
}

#[test]
fn time_awake_is_not_mistaken_for_sleep() {
    // Both clocks advance together for an hour: no sleep, so no fresh grace for a lease that
    // ended in that hour.
    let mut e = engine();
    e.acquire("j", "a", secs(10), at(0)).unwrap();
    e.advance(at(9));
    assert!(matches!(
        kind(e.acquire("j", "b", secs(1), at(3_600))),
        GrantKind::TookOver { .. }
    ));
}

#[test]
fn sleep_extends_a_grace_that_was_running_when_the_machine_slept() {
    let mut e = engine();
    e.acquire("j", "a", secs(10), at(0)).unwrap();
    e.advance(at(12)); // in grace until 15
    let woke = woke_at(100, 12);
    assert!(matches!(
        e.acquire("j", "b", secs(1), woke),
        Err(Denied::Grace(_))
    ));
    assert_eq!(e.get("j", woke).unwrap().grace_until, woke.mono + secs(5));
}

#[test]
fn sleep_gives_nothing_to_a_lease_that_had_lapsed_before_it() {
    let mut e = engine();
    e.acquire("j", "a", secs(10), at(0)).unwrap();
    e.advance(at(20)); // grace ended at 15: anyone may take it
    let woke = woke_at(100, 20);
    assert!(matches!(
        kind(e.acquire("j", "b", secs(1), woke)),
        GrantKind::TookOver { .. }
    ));
}

#[test]
fn waiter_is_not_served_during_the_fresh_grace_after_sleep() {
    let mut e = engine();
    e.acquire("j", "a", secs(10), at(0)).unwrap();
    let WaitOutcome::Queued(w) = e.acquire_or_wait("j", "b", secs(10), at(1)) else {
        panic!("b should queue")
    };
    e.advance(at(5));
    let woke = woke_at(65, 5);
    e.advance(woke);
    assert!(e.take_woken().is_empty());
    let mut later = woke;
    later.mono = woke.mono + secs(5);
    later.awake = woke.awake + secs(5);
    later.wall = woke.wall + secs(5);
    e.advance(later);
    assert_eq!(e.take_woken()[0].waiter, w);
}

#[test]
fn holder_renewing_in_the_fresh_grace_after_sleep_keeps_its_token() {
    let mut e = engine();
    let first = e.acquire("j", "a", secs(10), at(0)).unwrap();
    e.advance(at(5));
    let g = e.acquire("j", "a", secs(10), woke_at(3600, 5)).unwrap();
    assert_eq!(g.kind, GrantKind::Renewed);
    assert_eq!(g.lease.token, first.lease.token);
}

#[test]
fn restore_keeps_every_saved_holder_even_over_max_jobs() {
    let mut before = engine();
    for job in ["a", "b", "c"] {
        before.acquire(job, "x", secs(60), at(0)).unwrap();
    }
    let saved = before.export(at(1));
    let mut after = Engine::new(Rules {
        max_jobs: 2,
        ..Rules::default()
    });
    assert_eq!(after.restore(saved, at(2)), 0);
    assert_eq!(after.len(), 3);
    assert!(matches!(
        after.acquire("a", "y", secs(1), at(2)),
        Err(Denied::Held(_))
    ));
    assert_eq!(
        after.acquire("new", "y", secs(1), at(2)),
        Err(Denied::Full { max_jobs: 2 })
    );
}

#[test]
fn restore_keeps_a_lease_longer_than_a_lowered_max_ttl() {
    let mut before = Engine::new(Rules {
        max_ttl: secs(36_000),
        ..Rules::default()
    });
    before.acquire("j", "a", secs(36_000), at(0)).unwrap();
    let saved = before.export(at(0));
    let mut after = Engine::new(Rules {
        max_ttl: secs(3600),
        ..Rules::default()
    });
    after.restore(saved, at(0));
    assert_eq!(after.get("j", at(0)).unwrap().expires, at(36_000).mono);
    assert!(matches!(
        after.acquire("j", "b", secs(1), at(3_606)),
        Err(Denied::Held(_))
    ));
}

#[test]
fn live_jobs_counts_held_and_grace_but_not_expired() {
    let mut e = engine();
    e.acquire("a", "x", secs(10), at(0)).unwrap();
    e.acquire("b", "x", secs(100), at(0)).unwrap();
    assert_eq!(e.live_jobs(), 2);
    e.advance(at(12));
    assert_eq!(e.live_jobs(), 2, "a is in its grace period");
    e.advance(at(15));
    assert_eq!(e.live_jobs(), 1, "a expired");
    e.acquire("a", "x", secs(10), at(16)).unwrap();
    assert_eq!(e.live_jobs(), 2, "renewed");
}

#[test]
fn the_engine_keeps_the_rules_it_was_given() {
    let rules = Rules {
        grace: secs(7),
        max_jobs: 3,
        ..Rules::default()
    };
    assert_eq!(Engine::new(rules.clone()).rules(), &rules);
}

#[test]
fn lease_states_are_named_as_on_the_wire() {
    let names = [LeaseState::Held, LeaseState::Grace, LeaseState::Expired].map(LeaseState::as_str);
    assert_eq!(names, ["held", "grace", "expired"]);
}

#[test]
fn event_kinds_have_stable_names() {
    let taken = EventKind::TakenOver {
        previous: "a".into(),
        previous_token: 1,
        lapsed_for: secs(1),
    };
    let names = [
        EventKind::Acquired,
        EventKind::Renewed,
        EventKind::Released,
        EventKind::ForceReleased,
        EventKind::Expired,
        taken,
    ]
    .map(|k| k.name());
    assert_eq!(
        names,
        [
            "acquired",
            "renewed",
            "released",
            "force_released",
            "expired",
            "taken_over"
        ]
    );
}

/// A table saved at `at(0)` while quarantined until `at(until)`.
fn saved_quarantine(until: u64) -> SavedState {
    let mut e = engine();
    e.quarantine(at(until).mono);
    e.export(at(0))
}

#[test]
fn restoring_a_shorter_saved_quarantine_never_cuts_short_the_one_in_force() {
    let mut e = engine();
    e.quarantine(at(100).mono);
    e.restore(saved_quarantine(50), at(0));
    assert_eq!(e.quarantined_until(at(0).mono), Some(at(100).mono));
}

#[test]
fn restoring_a_longer_saved_quarantine_extends_the_one_in_force() {
    let mut e = engine();
    e.quarantine(at(30).mono);
    e.restore(saved_quarantine(60), at(0));
    assert_eq!(e.quarantined_until(at(0).mono), Some(at(60).mono));
}

#[test]
fn only_changes_of_holder_must_be_saved_before_a_reply() {
    let event = |kind| Event {
        kind,
        job: "j".into(),
        holder: "a".into(),
        token: 1,
        at: SystemTime::UNIX_EPOCH,
        acquired_at: SystemTime::UNIX_EPOCH,
        expires_at: SystemTime::UNIX_EPOCH,
    };
    let taken = EventKind::TakenOver {
        previous: "b".into(),
        previous_token: 1,
        lapsed_for: secs(1),
    };
    for kind in [
        EventKind::Acquired,
        EventKind::Released,
        EventKind::ForceReleased,
        taken,
    ] {
        assert!(event(kind.clone()).changes_holder(), "{kind:?}");
    }
    for kind in [EventKind::Renewed, EventKind::Expired] {
        assert!(!event(kind.clone()).changes_holder(), "{kind:?}");
    }
}

/// `client` asking as run `run`.
fn run<'a>(client: &'a str, run: &'a str) -> Who<'a> {
    Who {
        client,
        run: Some(run),
    }
}

#[test]
fn another_run_of_the_same_client_is_refused_until_the_lease_and_its_grace_end() {
    let mut e = engine();
    let first = e.acquire("job", run("nas", "r1"), secs(10), at(0)).unwrap();
    assert_eq!(first.lease.run.as_deref(), Some("r1"));
    // Held: refused as if it were another client, and nothing is extended.
    assert!(matches!(
        e.acquire("job", run("nas", "r2"), secs(10), at_ms(9_999)),
        Err(Denied::Held(_))
    ));
    // From the instant of expiry to the end of grace only r1 may take it back.
    assert!(matches!(
        e.acquire("job", run("nas", "r2"), secs(10), at(10)),
        Err(Denied::Grace(_))
    ));
    assert!(matches!(
        e.acquire("job", run("nas", "r2"), secs(10), at_ms(14_999)),
        Err(Denied::Grace(_))
    ));
    let lease = e.get("job", at_ms(14_999)).unwrap();
    assert_eq!(
        lease.expires,
        at(10).mono,
        "a refusal never extends anything"
    );
    // At the end of grace the lapsed lease is taken over as a fresh grant.
    let g = e
        .acquire("job", run("nas", "r2"), secs(10), at(15))
        .unwrap();
    assert_eq!(g.lease.token, first.lease.token + 1);
    assert_eq!(g.lease.run.as_deref(), Some("r2"));
    assert!(matches!(g.kind, GrantKind::TookOver { ref previous, .. } if &**previous == "nas"));
}

#[test]
fn a_crashed_runs_lapsed_lease_without_a_run_is_taken_over_by_a_run_not_renewed() {
    let mut e = engine();
    let first = e.acquire("stale", "x", secs(2), at(0)).unwrap();
    assert!(matches!(
        e.acquire("stale", run("x", "r"), secs(2), at(6)),
        Err(Denied::Grace(_))
    ));
    let g = e.acquire("stale", run("x", "r"), secs(2), at(7)).unwrap();
    assert_ne!(g.kind, GrantKind::Renewed);
    assert!(g.lease.token > first.lease.token);
}

#[test]
fn a_request_without_a_run_keeps_the_original_rule_same_client_renews() {
    let mut e = engine();
    let first = e.acquire("job", run("nas", "r1"), secs(10), at(0)).unwrap();
    let g = e.acquire("job", "nas", secs(10), at(4)).unwrap();
    assert_eq!(g.kind, GrantKind::Renewed);
    assert_eq!(g.lease.token, first.lease.token);
    assert_eq!(g.lease.run.as_deref(), Some("r1"), "the lease stays r1's");
    // The same run renews too.
    let g = e.acquire("job", run("nas", "r1"), secs(10), at(5)).unwrap();
    assert_eq!(g.kind, GrantKind::Renewed);
}

#[test]
fn a_run_releases_only_its_own_lease_and_a_client_without_run_any_of_its_own() {
    let mut e = engine();
    e.acquire("job", run("nas", "r1"), secs(10), at(0)).unwrap();
    assert_eq!(e.release("job", run("nas", "r2"), at(1)), Err(NotHolder));
    assert_eq!(e.release("job", run("other", "r1"), at(1)), Err(NotHolder));
    assert!(e.release("job", run("nas", "r1"), at(1)).is_ok());
    e.acquire("job", run("nas", "r1"), secs(10), at(2)).unwrap();
    assert!(e.release("job", "nas", at(3)).is_ok());
}

#[test]
fn two_runs_of_one_client_queue_first_come_first_served_with_other_clients() {
    let mut e = engine();
    e.acquire("job", run("nas", "r1"), secs(10), at(0)).unwrap();
    let WaitOutcome::Queued(laptop) = e.acquire_or_wait("job", "laptop", secs(10), at(1)) else {
        panic!("laptop queues");
    };
    let WaitOutcome::Queued(r2) = e.acquire_or_wait("job", run("nas", "r2"), secs(10), at(2))
    else {
        panic!("a second run of nas queues");
    };
    e.release("job", run("nas", "r1"), at(3)).unwrap();
    let woken = e.take_woken();
    assert_eq!(woken.len(), 1);
    assert_eq!(woken[0].waiter, laptop);
    e.release("job", "laptop", at(4)).unwrap();
    let woken = e.take_woken();
    assert_eq!(woken[0].waiter, r2);
    assert_eq!(woken[0].grant.lease.run.as_deref(), Some("r2"));
    assert_eq!(&*woken[0].grant.lease.holder, "nas");
}

#[test]
fn the_run_survives_a_save_and_restore_and_old_files_without_it_load() {
    let mut e = engine();
    e.acquire("job", run("nas", "r1"), secs(60), at(0)).unwrap();
    let saved = e.export(at(1));
    assert_eq!(saved.leases[0].run.as_deref(), Some("r1"));
    let text = serde_json::to_string(&saved).unwrap();
    let back: SavedState = serde_json::from_str(&text).unwrap();
    assert_eq!(back, saved);
    let old = r#"{"last_token":1,"leases":[{"job":"j","holder":"h","token":1,"ttl_ms":1000,
        "acquired_at_ms":0,"expires_at_ms":0}]}"#;
    let old: SavedState = serde_json::from_str(old).unwrap();
    assert_eq!(old.leases[0].run, None);
}

/// A restart at `at(s)` whose wall clock reads `shift_s` seconds off (NTP correcting a
/// Raspberry Pi's clock after boot, a user changing it).
fn restart_at_with_wall_off_by(s: u64, shift_s: i64) -> Now {
    let mut now = at(s);
    let shift = secs(shift_s.unsigned_abs());
    if shift_s >= 0 {
        now.wall += shift;
    } else {
        now.wall -= shift;
    }
    now
}

#[test]
fn a_wall_clock_jump_either_way_never_shortens_a_restored_quarantine() {
    for shift in [-86_400, -30, 0, 30, 86_400] {
        let mut e = engine();
        e.quarantine(at(60).mono);
        let saved = e.export(at(0));
        let restart = restart_at_with_wall_off_by(10, shift);
        let mut after = engine();
        after.restore(saved, restart);
        // No clock says how long the server was down, so all that was left still is.
        let until = after.quarantined_until(restart.mono);
        assert!(
            until.is_some_and(|u| u >= restart.mono + secs(60)),
            "wall clock off by {shift} s: quarantine until {until:?}"
        );
        // And a crash now would leave watermarks that cover it.
        let again = after.export(restart);
        assert!(again.quarantine_left_ms >= Some(60_000), "{again:?}");
    }
}

#[test]
fn a_wall_clock_jump_either_way_never_shortens_a_restored_lease() {
    for shift in [-86_400, -30, 0, 30, 86_400] {
        let mut before = engine();
        before.acquire("j", "a", secs(30), at(0)).unwrap();
        let saved = before.export(at(1));
        let restart = restart_at_with_wall_off_by(5, shift);
        let mut after = engine();
        after.restore(saved, restart);
        let expires = after.get("j", restart).unwrap().expires;
        assert!(
            expires >= restart.mono + secs(30),
            "wall clock off by {shift} s: the lease ends {:?} after restart",
            restart.mono.until(expires)
        );
        assert!(after.export(restart).leases[0].ttl_ms >= 30_000);
    }
}

/// An engine whose next fencing token is the last one there is (`u64::MAX`): only a corrupt
/// or hostile state file gets a counter this high.
fn engine_with_one_token_left() -> Engine {
    let mut e = engine();
    e.restore(
        SavedState {
            last_token: u64::MAX - 1,
            leases: vec![],
            quarantine_until_ms: None,
            quarantine_left_ms: None,
        },
        at(0),
    );
    e
}

#[test]
fn after_the_last_token_no_new_holder_is_granted_but_the_holder_renews() {
    let mut e = engine_with_one_token_left();
    assert!(!e.tokens_exhausted());
    let last = e.acquire("a", "x", secs(10), at(0)).unwrap();
    assert_eq!(last.lease.token, u64::MAX);
    assert!(e.tokens_exhausted());
    // A job nobody holds would need a new token.
    assert_eq!(
        e.acquire("b", "y", secs(10), at(1)),
        Err(Denied::TokensExhausted)
    );
    // So would taking over a lease that lapsed (expired at 10 s, grace over at 15 s).
    assert_eq!(
        e.acquire("a", "y", secs(10), at(30)),
        Err(Denied::TokensExhausted)
    );
    // Its holder renews under the same token, even after the lapse.
    let renewed = e.acquire("a", "x", secs(10), at(31)).unwrap();
    assert_eq!(renewed.kind, GrantKind::Renewed);
    assert_eq!(renewed.lease.token, u64::MAX);
}

#[test]
fn after_the_last_token_a_released_job_is_not_handed_to_its_waiter() {
    let mut e = engine_with_one_token_left();
    e.acquire("a", "x", secs(10), at(0)).unwrap();
    let WaitOutcome::Queued(_) = e.acquire_or_wait("a", "y", secs(10), at(1)) else {
        panic!("y queues behind x");
    };
    e.release("a", "x", at(2)).unwrap();
    assert!(
        e.take_woken().is_empty(),
        "no token left to grant the waiter"
    );
    assert_eq!(e.get("a", at(2)), None);
}

#[test]
fn peek_shows_the_recorded_lease_without_advancing() {
    let mut e = engine();
    assert!(e.peek("backup").is_none());
    e.acquire("backup", "a", secs(10), at(0)).unwrap();
    let lease = e.peek("backup").expect("recorded");
    assert_eq!(&*lease.holder, "a");
    assert_eq!(lease.ttl, secs(10));
    assert_eq!(lease.expires, at(10).mono);
}

#[test]
fn events_lists_what_take_events_will_take_without_taking_it() {
    let mut e = engine();
    e.acquire("backup", "a", secs(10), at(0)).unwrap();
    e.acquire("backup", "a", secs(10), at(1)).unwrap();
    let kinds: Vec<EventKind> = e.events().iter().map(|ev| ev.kind.clone()).collect();
    assert_eq!(kinds.len(), 2, "{kinds:?}");
    assert_eq!(e.events().len(), 2, "looking takes nothing");
    let taken: Vec<EventKind> = e.take_events().into_iter().map(|ev| ev.kind).collect();
    assert_eq!(taken, kinds);
    assert!(e.events().is_empty());
}
