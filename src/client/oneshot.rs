//! The one-shot commands: `acquire` (optionally waiting), `release`, `status` and `list`.
//! Results go to stdout (a sentence, or the server's JSON with `--json`); refusals and errors
//! go to stderr, so `foolock status backup > file` never mixes the two.

use super::http::{HttpError, REQUEST_TIMEOUT};
use super::output::{self, Human, Style};
use super::wait::{Next, Waiting};
use super::{AcquireArgs, ClientError, Connection, Say};
use crate::api::wire::LockReply;
use crate::exit::Exit;
use crate::time::{Clock, SystemClock};
use hyper::StatusCode;
use std::process::ExitCode;
use std::time::Duration;

/// `foolock acquire JOB [--wait DUR]`: take or renew the job once, long-polling up to `--wait`
/// for a busy one. Exit 0 when granted; a refusal is a [`ClientError::Refused`].
pub async fn acquire(conn: &Connection, args: &AcquireArgs) -> Result<ExitCode, ClientError> {
    let (api, client, json) = (&conn.api, conn.settings.client.as_str(), args.out.json);
    let say = args.talk.say();
    let clock = SystemClock;
    let started = clock.now().mono;
    let mut waiting = Waiting::new(started, args.wait);
    let announced = if args.wait.is_zero() {
        false
    } else {
        announce_wait(conn, &args.job, args.wait, say).await
    };
    let reply = loop {
        let sent = clock.now().mono;
        let wait = waiting.next_wait(sent);
        let result = api
            .acquire(
                &args.job,
                client,
                Some(args.ttl),
                (!wait.is_zero()).then_some(wait),
                wait + REQUEST_TIMEOUT,
            )
            .await;
        let reply = json_on_error(json, result)?;
        match waiting.after(&reply, sent, wait, clock.now().mono) {
            Next::Again { pause } => tokio::time::sleep(pause).await,
            Next::Done => break reply,
        }
    };
    match reply.status {
        StatusCode::OK => {
            print(json, &reply.body, || {
                output::granted(&args.job, client, &reply.body)
            });
            let waited = started.until(clock.now().mono);
            if announced {
                say.note(format!("got {} after {}", args.job, Human(waited)));
            }
            Ok(Exit::Ok.into())
        }
        StatusCode::CONFLICT => {
            if json {
                println!("{}", to_json(&reply.body));
            }
            let mut why = output::denial(&args.job, &reply.body, Style::stderr());
            if !args.wait.is_zero() {
                why.push_str(&format!("; gave up after waiting {}", Human(args.wait)));
            }
            Err(ClientError::Refused(why))
        }
        _ => Err(json_error(json, ClientError::from_reply(&reply))),
    }
}

/// Before a wait, on a terminal: says once who holds the job and since when. Returns whether
/// it said so (then the grant is announced too).
pub async fn announce_wait(conn: &Connection, job: &str, wait: Duration, say: Say) -> bool {
    if !say.notes() {
        return false;
    }
    let Ok(reply) = conn.api.status(job).await else {
        return false;
    };
    if !output::is_taken(&reply.body) {
        return false;
    }
    say.note(waiting_line(job, &reply.body, wait, Style::stderr()));
    true
}

/// `backup is held by nas since 10:32:05 (expires in 4m); waiting up to 10m`.
pub fn waiting_line(job: &str, body: &LockReply, wait: Duration, style: Style) -> String {
    format!(
        "{}; waiting up to {}",
        output::denial(job, body, style),
        Human(wait)
    )
}

/// `foolock release JOB`: exit 0 if released; "you do not hold it" is a refusal.
pub async fn release(conn: &Connection, job: &str, json: bool) -> Result<ExitCode, ClientError> {
    let client = &conn.settings.client;
    let reply = json_on_error(json, conn.api.release(job, client, REQUEST_TIMEOUT).await)?;
    match reply.status {
        StatusCode::OK => {
            print(json, &reply.body, || format!("released {job}"));
            Ok(Exit::Ok.into())
        }
        StatusCode::FORBIDDEN | StatusCode::CONFLICT => {
            if json {
                println!("{}", to_json(&reply.body));
            }
            Err(ClientError::Refused(format!(
                "{client} does not hold {job}; nothing released"
            )))
        }
        _ => Err(json_error(json, ClientError::from_reply(&reply))),
    }
}

/// `foolock force-release JOB`: exit 0 if it was held and is now free; a free job, or a
/// server that does not allow it from here, is a refusal.
pub async fn force_release(
    conn: &Connection,
    job: &str,
    json: bool,
) -> Result<ExitCode, ClientError> {
    let reply = json_on_error(json, conn.api.force_release(job).await)?;
    let refused = |why: String| {
        if json {
            println!("{}", to_json(&reply.body));
        }
        Err(ClientError::Refused(why))
    };
    match reply.status {
        StatusCode::OK => {
            print(json, &reply.body, || {
                let holder = reply.body.holder.as_deref().unwrap_or("its holder");
                format!("force-released {job} (it was held by {holder})")
            });
            Ok(Exit::Ok.into())
        }
        StatusCode::NOT_FOUND if reply.body.error.as_deref() == Some("no lock held") => {
            refused(format!("{job} is not held; nothing to release"))
        }
        StatusCode::FORBIDDEN => refused(format!(
            "{}; run `foolock force-release {job}` on the server's machine",
            reply.body.error.as_deref().unwrap_or("the server refused")
        )),
        _ => Err(json_error(json, ClientError::from_reply(&reply))),
    }
}

/// `foolock status JOB`: exit 0 if the job is held (or in its grace period), 1 if free.
pub async fn status(conn: &Connection, job: &str, json: bool) -> Result<ExitCode, ClientError> {
    let reply = json_on_error(json, conn.api.status(job).await)?;
    if reply.status != StatusCode::OK {
        return Err(json_error(json, ClientError::from_reply(&reply)));
    }
    print(json, &reply.body, || {
        output::status(job, &reply.body, Style::stdout())
    });
    Ok(held_or_free(output::is_taken(&reply.body)))
}

/// `foolock list` (exit 0) and `foolock status` without a job (exit 0 if anything is held,
/// 1 if nothing is). `all` adds the free jobs whose lapsed lease the server remembers.
pub async fn list(
    conn: &Connection,
    all: bool,
    json: bool,
    as_status: bool,
) -> Result<ExitCode, ClientError> {
    let reply = match json_on_error(json, conn.api.list().await)? {
        Ok(reply) => reply,
        Err(refused) => return Err(json_error(json, ClientError::from_reply(&refused))),
    };
    if json {
        println!("{}", to_json(&reply.body));
    } else {
        print!("{}", output::table(&reply.body.locks, all, Style::stdout()));
    }
    if !as_status {
        return Ok(Exit::Ok.into());
    }
    Ok(held_or_free(
        reply.body.locks.iter().any(output::row_is_taken),
    ))
}

fn held_or_free(held: bool) -> ExitCode {
    if held {
        Exit::Ok.into()
    } else {
        Exit::Refused.into()
    }
}

/// Prints the reply as JSON or as the sentence `human` makes.
fn print(json: bool, body: &LockReply, human: impl FnOnce() -> String) {
    if json {
        println!("{}", to_json(body));
    } else {
        println!("{}", human());
    }
}

fn to_json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// With `--json`, a failure is also reported as `{"success":false,"error":…}` on stdout so a
/// script parsing stdout always gets JSON.
fn json_error(json: bool, err: ClientError) -> ClientError {
    if json {
        let mut body = LockReply::error(err.to_string());
        body.success = Some(false);
        println!("{}", to_json(&body));
    }
    err
}

fn json_on_error<T>(json: bool, result: Result<T, HttpError>) -> Result<T, ClientError> {
    result.map_err(|e| json_error(json, e.into()))
}
