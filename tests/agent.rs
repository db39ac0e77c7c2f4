//! The desktop agent, end to end: the real `foolock agent` binary on its own X server (Xvfb)
//! and its own D-Bus session bus. The tests read the tray menu the way a panel does
//! (`com.canonical.dbusmenu.GetLayout`), click it (`…Event`), drive locks over HTTP, and stand
//! in for the desktop's notification service to record what the agent posts.
//!
//! Needs `Xvfb` and `dbus-daemon` (Debian: `xvfb dbus-x11`). Without them the GUI tests are
//! skipped with a message, except under `CI`, where they fail.

#![cfg(target_os = "linux")]

mod support;

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::{BIN, listening_addr, request, wait_for};

/// How long to wait for something that should happen promptly (startup, a D-Bus round trip).
const PROMPT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// HTTP

fn acquire(addr: SocketAddr, job: &str, client: &str, ttl: &str) -> serde_json::Value {
    let path = format!("/lock?job={job}&client={client}&ttl={ttl}");
    let reply = request(addr, "POST", &path).expect("connect to the agent's server");
    assert_eq!(
        reply.status, 200,
        "acquire {job} for {client}: {}",
        reply.body
    );
    reply.body
}

// ---------------------------------------------------------------------------------------------
// A private desktop: Xvfb + a session bus

mod desktop {
    use super::*;

    /// An X server and a session bus for one test, stopped on drop.
    pub struct Desktop {
        xvfb: Child,
        bus: Child,
        pub display: String,
        pub bus_address: String,
    }

    impl Drop for Desktop {
        fn drop(&mut self) {
            let _ = self.xvfb.kill();
            let _ = self.bus.kill();
            let _ = self.xvfb.wait();
            let _ = self.bus.wait();
        }
    }

    fn installed(program: &str) -> bool {
        std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
    }

    /// Starts a desktop, or returns `None` (test skipped) when Xvfb or dbus-daemon is missing
    /// outside CI. Under CI a missing tool is a failure: the tests must really run there.
    pub fn start() -> Option<Desktop> {
        if !cfg!(feature = "tray") {
            eprintln!("SKIPPED: built without the `tray` feature");
            return None;
        }
        let missing: Vec<&str> = ["Xvfb", "dbus-daemon"]
            .into_iter()
            .filter(|p| !installed(p))
            .collect();
        if !missing.is_empty() {
            let msg = format!(
                "{} not installed (Debian: apt-get install xvfb dbus-x11)",
                missing.join(" and ")
            );
            if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0") {
                panic!("agent GUI tests cannot run under CI: {msg}");
            }
            eprintln!("SKIPPED: {msg}");
            return None;
        }
        // -displayfd: Xvfb picks a free display and writes its number once it accepts clients.
        let mut xvfb = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-nolisten",
                "tcp",
                "-screen",
                "0",
                "800x600x24",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start Xvfb");
        let display = first_line(&mut xvfb, "Xvfb display number");
        let mut bus = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address=1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dbus-daemon");
        let bus_address = first_line(&mut bus, "session bus address");
        Some(Desktop {
            xvfb,
            bus,
            display: format!(":{display}"),
            bus_address,
        })
    }

    fn first_line(child: &mut Child, what: &str) -> String {
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap_or_else(|e| panic!("reading {what}: {e}"));
        let line = line.trim().to_owned();
        assert!(!line.is_empty(), "no {what}");
        line
    }
}

// ---------------------------------------------------------------------------------------------
// The agent process

struct Agent {
    child: Child,
    addr: Option<SocketAddr>,
    _config_dir: tempfile::TempDir,
}

impl Agent {
    /// Starts `foolock agent ARGS…` on `desktop` with `config` as its config file.
    fn start(desktop: &desktop::Desktop, args: &[&str], config: &str) -> Agent {
        let config_dir = tempfile::tempdir().unwrap();
        let config_path = config_dir.path().join("config.toml");
        std::fs::write(&config_path, config).unwrap();
        let child = Command::new(BIN)
            .arg("agent")
            .args(args)
            .env("FOOLOCK_CONFIG", &config_path)
            // A home of its own: state directory, login items and config stay in the tempdir.
            .env("HOME", config_dir.path())
            .env("XDG_CONFIG_HOME", config_dir.path().join("config"))
            .env("XDG_DATA_HOME", config_dir.path().join("data"))
            .env("DISPLAY", &desktop.display)
            .env_remove("WAYLAND_DISPLAY")
            .env("DBUS_SESSION_BUS_ADDRESS", &desktop.bus_address)
            // Keep GTK from starting the accessibility bus: it is not under test.
            .env("NO_AT_BRIDGE", "1")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start foolock agent");
        Agent {
            child,
            addr: None,
            _config_dir: config_dir,
        }
    }

    /// Starts the agent on a free loopback port and waits until it serves.
    fn serving(desktop: &desktop::Desktop, args: &[&str], config: &str) -> Agent {
        let mut all = vec!["--listen", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let mut agent = Agent::start(desktop, &all, config);
        let addr = listening_addr(&mut agent.child)
            .unwrap_or_else(|line| panic!("unexpected first line: {line:?}"));
        agent.addr = Some(addr);
        agent
    }

    fn addr(&self) -> SocketAddr {
        self.addr.expect("agent is serving")
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// The tray menu over D-Bus, as a panel sees it

mod dbusmenu {
    use super::*;
    use std::collections::HashMap;
    use zbus::blocking::Connection;
    use zbus::zvariant::{OwnedValue, Value};

    /// One menu entry with the properties the tests look at.
    #[derive(Debug, Clone)]
    pub struct Item {
        pub id: i32,
        pub label: String,
        pub enabled: bool,
        pub separator: bool,
        pub toggle_type: Option<String>,
        pub toggle_state: Option<i32>,
        pub children: Vec<Item>,
    }

    impl Item {
        /// Top-level labels, separators as `---`.
        pub fn labels(&self) -> Vec<String> {
            self.children
                .iter()
                .map(|c| {
                    if c.separator {
                        "---".to_owned()
                    } else {
                        c.label.clone()
                    }
                })
                .collect()
        }

        pub fn find(&self, label: &str) -> Option<&Item> {
            self.children.iter().find(|c| c.label == label)
        }

        pub fn find_prefix(&self, prefix: &str) -> Option<&Item> {
            self.children.iter().find(|c| c.label.starts_with(prefix))
        }
    }

    pub fn connect(address: &str) -> Connection {
        zbus::blocking::connection::Builder::address(address)
            .unwrap()
            .build()
            .expect("connect to the test's session bus")
    }

    /// The bus name ksni registers for the agent's tray: `org.kde.StatusNotifierItem-PID-1`.
    pub fn wait_for_tray(conn: &Connection, pid: u32) -> String {
        let name = format!("org.kde.StatusNotifierItem-{pid}-1");
        wait_for("the tray on the session bus", PROMPT, || {
            let reply = conn
                .call_method(
                    Some("org.freedesktop.DBus"),
                    "/org/freedesktop/DBus",
                    Some("org.freedesktop.DBus"),
                    "NameHasOwner",
                    &(name.as_str(),),
                )
                .ok()?;
            reply.body().deserialize::<bool>().ok()?.then_some(())
        });
        name
    }

    /// The whole menu tree.
    pub fn layout(conn: &Connection, tray: &str) -> Item {
        let reply = conn
            .call_method(
                Some(tray),
                "/MenuBar",
                Some("com.canonical.dbusmenu"),
                "GetLayout",
                &(0i32, -1i32, Vec::<String>::new()),
            )
            .expect("GetLayout");
        let body = reply.body();
        type Layout = (i32, HashMap<String, OwnedValue>, Vec<OwnedValue>);
        let (_revision, (id, props, children)): (u32, Layout) = body.deserialize().expect("layout");
        item(id, &props, children.iter().map(|c| &**c))
    }

    /// Sends a click on item `id`, as a panel does.
    pub fn click(conn: &Connection, tray: &str, id: i32) {
        conn.call_method(
            Some(tray),
            "/MenuBar",
            Some("com.canonical.dbusmenu"),
            "Event",
            &(id, "clicked", Value::from(0i32), 0u32),
        )
        .expect("Event clicked");
    }

    /// The tray's tooltip text (the description part of the SNI `ToolTip` property).
    pub fn tooltip(conn: &Connection, tray: &str) -> String {
        let reply = conn
            .call_method(
                Some(tray),
                "/StatusNotifierItem",
                Some("org.freedesktop.DBus.Properties"),
                "Get",
                &("org.kde.StatusNotifierItem", "ToolTip"),
            )
            .expect("ToolTip");
        let body = reply.body();
        let value: Value<'_> = body.deserialize().expect("ToolTip value");
        let value = match &value {
            Value::Value(inner) => inner.as_ref(),
            v => v,
        };
        let Value::Structure(s) = value else {
            panic!("ToolTip is not a struct: {value:?}")
        };
        String::try_from(s.fields()[3].try_clone().unwrap()).expect("ToolTip description")
    }

    /// A child: a variant holding `(id, properties, children)`.
    fn parse(v: &Value<'_>) -> Item {
        let v = match v {
            Value::Value(inner) => inner.as_ref(),
            v => v,
        };
        let Value::Structure(s) = v else {
            panic!("layout item is not a struct: {v:?}")
        };
        let fields = s.fields();
        let id = i32::try_from(&fields[0]).expect("item id");
        let props: HashMap<String, OwnedValue> =
            HashMap::try_from(fields[1].try_clone().unwrap()).expect("item properties");
        let Value::Array(children) = &fields[2] else {
            panic!("children is not an array")
        };
        item(id, &props, children.iter())
    }

    fn item<'a>(
        id: i32,
        props: &HashMap<String, OwnedValue>,
        children: impl Iterator<Item = &'a Value<'a>>,
    ) -> Item {
        let text = |k: &str| {
            props
                .get(k)
                .and_then(|v| String::try_from(v.try_clone().unwrap()).ok())
        };
        Item {
            id,
            label: text("label").unwrap_or_default(),
            enabled: props
                .get("enabled")
                .is_none_or(|v| bool::try_from(v).unwrap_or(true)),
            separator: text("type").as_deref() == Some("separator"),
            toggle_type: text("toggle-type"),
            toggle_state: props
                .get("toggle-state")
                .and_then(|v| i32::try_from(v).ok()),
            children: children.map(parse).collect(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A stand-in for the desktop's notification service

mod notifications {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    use zbus::zvariant::OwnedValue;

    #[derive(Debug, Clone)]
    pub struct Posted {
        pub summary: String,
        pub body: String,
    }

    struct Service {
        posted: Arc<Mutex<Vec<Posted>>>,
    }

    #[zbus::interface(name = "org.freedesktop.Notifications")]
    impl Service {
        #[allow(clippy::too_many_arguments)]
        fn notify(
            &self,
            _app_name: String,
            _replaces_id: u32,
            _app_icon: String,
            summary: String,
            body: String,
            _actions: Vec<String>,
            _hints: HashMap<String, OwnedValue>,
            _expire_timeout: i32,
        ) -> u32 {
            let mut posted = self.posted.lock().unwrap();
            posted.push(Posted { summary, body });
            posted.len() as u32
        }

        fn get_capabilities(&self) -> Vec<String> {
            vec!["body".into()]
        }

        fn get_server_information(&self) -> (String, String, String, String) {
            (
                "foolock-test".into(),
                "test".into(),
                "1".into(),
                "1.2".into(),
            )
        }

        fn close_notification(&self, _id: u32) {}
    }

    /// Owns `org.freedesktop.Notifications` on the bus and records every Notify call.
    pub struct Recorder {
        _conn: zbus::blocking::Connection,
        posted: Arc<Mutex<Vec<Posted>>>,
    }

    impl Recorder {
        pub fn start(bus_address: &str) -> Recorder {
            let posted = Arc::new(Mutex::new(Vec::new()));
            let conn = zbus::blocking::connection::Builder::address(bus_address)
                .unwrap()
                .name("org.freedesktop.Notifications")
                .unwrap()
                .serve_at(
                    "/org/freedesktop/Notifications",
                    Service {
                        posted: posted.clone(),
                    },
                )
                .unwrap()
                .build()
                .expect("serve org.freedesktop.Notifications");
            Recorder {
                _conn: conn,
                posted,
            }
        }

        pub fn posted(&self) -> Vec<Posted> {
            self.posted.lock().unwrap().clone()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tests

/// Reads `N` out of a label ending in `… · Ns left` / `… · expired, grace Ns`.
fn seconds_in(label: &str) -> u64 {
    label
        .rsplit(' ')
        .find_map(|w| w.strip_suffix('s')?.parse().ok())
        .unwrap_or_else(|| panic!("no seconds in {label:?}"))
}

#[test]
fn menu_shows_each_job_holder_and_countdown_and_counts_down() {
    let Some(desktop) = desktop::start() else {
        return;
    };
    let agent = Agent::serving(&desktop, &["--grace-period", "5s"], "");
    let conn = dbusmenu::connect(&desktop.bus_address);
    let tray = dbusmenu::wait_for_tray(&conn, agent.pid());

    // The header says "Starting…" until the runtime reports the bound address.
    let menu = wait_for("the listening header", PROMPT, || {
        let menu = dbusmenu::layout(&conn, &tray);
        menu.labels()[0].starts_with("Listening").then_some(menu)
    });
    assert_eq!(
        menu.labels(),
        [
            format!("Listening on {}", agent.addr()),
            "---".into(),
            "No locks held".into(),
            "---".into(),
            "Pause notifications".into(),
            "Start at login".into(),
            "Open config file".into(),
            "Quit".into(),
        ]
    );
    assert!(!menu.children[0].enabled, "the header is not clickable");
    assert_eq!(dbusmenu::tooltip(&conn, &tray), "foolock — no jobs held");
    let pause = menu.find("Pause notifications").unwrap();
    assert_eq!(pause.toggle_type.as_deref(), Some("checkmark"));
    assert_eq!(pause.toggle_state, Some(0));

    acquire(agent.addr(), "sync", "phone", "60s");
    let granted = acquire(agent.addr(), "backup", "laptop1", "30s");
    acquire(agent.addr(), "short", "laptop2", "1s");
    // Names with '&' are shown literally (muda's mnemonic escape must not leak through).
    acquire(agent.addr(), "R%26D", "a%26b", "60s");

    let menu = wait_for("the jobs in the menu", PROMPT, || {
        let menu = dbusmenu::layout(&conn, &tray);
        (menu.children.len() == 11).then_some(menu)
    });
    let labels = menu.labels();
    assert_eq!(dbusmenu::tooltip(&conn, &tray), "foolock — 4 jobs held");
    assert!(labels[2].starts_with("R&D — a&b · "), "{labels:?}");
    assert!(labels[3].starts_with("backup — laptop1 · "), "{labels:?}");
    assert!(labels[4].starts_with("short — laptop2 · "), "{labels:?}");
    assert!(labels[5].starts_with("sync — phone · "), "{labels:?}");
    assert!(!labels.contains(&"No locks held".to_owned()));

    let backup = menu.find_prefix("backup — laptop1 · ").unwrap();
    assert!(backup.label.ends_with("s left"), "{}", backup.label);
    let before = seconds_in(&backup.label);
    assert!((25..=30).contains(&before), "{}", backup.label);
    let details: Vec<&str> = backup.children.iter().map(|c| c.label.as_str()).collect();
    assert_eq!(details.len(), 3, "{details:?}");
    assert!(details[0].starts_with("Held since "), "{details:?}");
    assert_eq!(details[0].len(), "Held since 10:32:05".len(), "{details:?}");
    assert_eq!(details[1], format!("Token {}", granted["token"]));
    assert_eq!(details[2], "Force release");

    // Two seconds later the countdown has moved on and the 1 s lease is in its grace period.
    std::thread::sleep(Duration::from_secs(2));
    let menu = dbusmenu::layout(&conn, &tray);
    let after = seconds_in(&menu.find_prefix("backup — laptop1 · ").unwrap().label);
    assert!(
        after < before,
        "countdown did not move: {before}s then {after}s"
    );
    let short = &menu.find_prefix("short — laptop2 · ").unwrap().label;
    assert!(short.contains("· expired, grace "), "{short}");
    assert!((1..=5).contains(&seconds_in(short)), "{short}");
}

/// Thousands of held jobs made thousands of submenus (over a gigabyte, and a redraw at every
/// second boundary of any of them); the menu lists 20 and counts the rest in one line.
#[test]
fn menu_lists_twenty_jobs_and_counts_the_rest_in_one_line() {
    let Some(desktop) = desktop::start() else {
        return;
    };
    let agent = Agent::serving(&desktop, &[], "");
    let conn = dbusmenu::connect(&desktop.bus_address);
    let tray = dbusmenu::wait_for_tray(&conn, agent.pid());
    for i in 0..25 {
        acquire(agent.addr(), &format!("job{i:02}"), "laptop", "5m");
    }
    let menu = wait_for("the count of unlisted jobs", PROMPT, || {
        let menu = dbusmenu::layout(&conn, &tray);
        menu.find("…and 5 more — open the status page")
            .is_some()
            .then_some(menu)
    });
    let labels = menu.labels();
    let jobs: Vec<&String> = labels
        .iter()
        .filter(|l| l.contains(" — laptop · "))
        .collect();
    assert_eq!(jobs.len(), 20, "{labels:?}");
    assert!(
        jobs[0].starts_with("job00 — ") && jobs[19].starts_with("job19 — "),
        "{labels:?}"
    );
    let more = labels.iter().position(|l| l.starts_with("…and ")).unwrap();
    assert_eq!(more, 2 + 20, "right after the listed jobs: {labels:?}");
    assert_eq!(dbusmenu::tooltip(&conn, &tray), "foolock — 25 jobs held");
}

#[test]
fn force_release_click_frees_the_job_and_notifies() {
    let Some(desktop) = desktop::start() else {
        return;
    };
    let recorder = notifications::Recorder::start(&desktop.bus_address);
    let agent = Agent::serving(&desktop, &[], "");
    let conn = dbusmenu::connect(&desktop.bus_address);
    let tray = dbusmenu::wait_for_tray(&conn, agent.pid());

    let first = acquire(agent.addr(), "backup", "laptop1", "60s");
    let menu = wait_for("backup in the menu", PROMPT, || {
        let menu = dbusmenu::layout(&conn, &tray);
        menu.find_prefix("backup — laptop1 · ")
            .is_some()
            .then_some(menu)
    });
    let entry = menu.find_prefix("backup — laptop1 · ").unwrap();
    let force = entry.find("Force release").unwrap();
    dbusmenu::click(&conn, &tray, force.id);

    wait_for("GET /lock to show backup free", PROMPT, || {
        let reply = request(agent.addr(), "GET", "/lock?job=backup").unwrap();
        (reply.body["holder"] == "").then_some(())
    });
    let menu = wait_for("the menu to drop backup", PROMPT, || {
        let menu = dbusmenu::layout(&conn, &tray);
        menu.find("No locks held").is_some().then_some(menu)
    });
    assert!(menu.find_prefix("backup").is_none());
    let posted = wait_for("a force-release notification", PROMPT, || {
        let posted = recorder.posted();
        (!posted.is_empty()).then_some(posted)
    });
    assert!(posted[0].summary.contains("backup"), "{posted:?}");
    assert!(posted[0].body.contains("laptop1"), "{posted:?}");

    // The old holder renewing gets the job back, but as a fresh grant: a new token tells it
    // that it lost the lock in between.
    let again = acquire(agent.addr(), "backup", "laptop1", "60s");
    assert_eq!(again["message"], "acquired", "{again}");
    assert!(
        again["token"].as_u64() > first["token"].as_u64(),
        "{first} then {again}"
    );
}

#[test]
fn takeover_after_grace_posts_a_notification_naming_both_holders() {
    let Some(desktop) = desktop::start() else {
        return;
    };
    let recorder = notifications::Recorder::start(&desktop.bus_address);
    let agent = Agent::serving(&desktop, &["--grace-period", "1s"], "");
    let conn = dbusmenu::connect(&desktop.bus_address);
    dbusmenu::wait_for_tray(&conn, agent.pid());

    acquire(agent.addr(), "backup", "laptop1", "1s");
    // Lease 1 s + grace 1 s, then a second of margin.
    std::thread::sleep(Duration::from_secs(3));
    let taken = acquire(agent.addr(), "backup", "laptop2", "30s");
    assert_eq!(taken["holder"], "laptop2", "{taken}");

    let posted = wait_for("a takeover notification", PROMPT, || {
        recorder
            .posted()
            .into_iter()
            .find(|p| p.summary == "backup taken over")
    });
    assert!(
        posted
            .body
            .starts_with("laptop2 took over from laptop1 (laptop1's lease lapsed "),
        "{posted:?}"
    );
}

#[test]
fn paused_notifications_post_nothing_until_unticked() {
    let Some(desktop) = desktop::start() else {
        return;
    };
    let recorder = notifications::Recorder::start(&desktop.bus_address);
    let agent = Agent::serving(&desktop, &[], "[notifications]\nacquire = true\n");
    let conn = dbusmenu::connect(&desktop.bus_address);
    let tray = dbusmenu::wait_for_tray(&conn, agent.pid());

    let pause = dbusmenu::layout(&conn, &tray)
        .find("Pause notifications")
        .unwrap()
        .id;
    dbusmenu::click(&conn, &tray, pause);
    wait_for("the pause tick", PROMPT, || {
        let menu = dbusmenu::layout(&conn, &tray);
        (menu.find("Pause notifications")?.toggle_state == Some(1)).then_some(())
    });
    acquire(agent.addr(), "quiet", "laptop1", "60s");
    // The notification would be posted within milliseconds; give it well over a second.
    std::thread::sleep(Duration::from_secs(2));
    assert!(recorder.posted().is_empty(), "{:?}", recorder.posted());

    // Item ids change whenever the set of jobs does (ksni renumbers on layout changes), so
    // look the entry up again, as a panel would after `LayoutUpdated`.
    let pause = dbusmenu::layout(&conn, &tray)
        .find("Pause notifications")
        .unwrap()
        .id;
    dbusmenu::click(&conn, &tray, pause);
    wait_for("the pause untick", PROMPT, || {
        let menu = dbusmenu::layout(&conn, &tray);
        (menu.find("Pause notifications")?.toggle_state == Some(0)).then_some(())
    });
    acquire(agent.addr(), "loud", "laptop1", "60s");
    wait_for("the acquire notification after unpausing", PROMPT, || {
        recorder
            .posted()
            .into_iter()
            .find(|p| p.summary == "loud acquired")
    });
}

#[test]
fn start_at_login_item_registers_and_removes_the_login_item() {
    let Some(desktop) = desktop::start() else {
        return;
    };
    let agent = Agent::serving(&desktop, &[], "");
    let autostart = agent
        ._config_dir
        .path()
        .join("config/autostart/foolock.desktop");
    let conn = dbusmenu::connect(&desktop.bus_address);
    let tray = dbusmenu::wait_for_tray(&conn, agent.pid());
    let item = |conn: &zbus::blocking::Connection| {
        dbusmenu::layout(conn, &tray)
            .find("Start at login")
            .cloned()
            .expect("a Start at login item")
    };
    assert_eq!(
        item(&conn).toggle_state,
        Some(0),
        "not registered in a fresh home"
    );

    dbusmenu::click(&conn, &tray, item(&conn).id);
    wait_for("the autostart entry", PROMPT, || {
        autostart.exists().then_some(())
    });
    let entry = std::fs::read_to_string(&autostart).unwrap();
    assert!(entry.contains("Exec="), "{entry}");
    assert_eq!(item(&conn).toggle_state, Some(1));

    dbusmenu::click(&conn, &tray, item(&conn).id);
    wait_for("the autostart entry to go", PROMPT, || {
        (!autostart.exists()).then_some(())
    });
    assert_eq!(item(&conn).toggle_state, Some(0));
}

#[test]
fn port_in_use_shows_in_the_menu_and_notifies_and_quit_still_works() {
    let Some(desktop) = desktop::start() else {
        return;
    };
    let recorder = notifications::Recorder::start(&desktop.bus_address);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap();
    let mut agent = Agent::start(&desktop, &["--listen", &port.to_string()], "");
    let conn = dbusmenu::connect(&desktop.bus_address);
    let tray = dbusmenu::wait_for_tray(&conn, agent.pid());

    let menu = wait_for("the bind error in the header", PROMPT, || {
        let menu = dbusmenu::layout(&conn, &tray);
        menu.children[0]
            .label
            .starts_with("Cannot listen on ")
            .then_some(menu)
    });
    assert!(menu.children[0].label.contains(&port.to_string()));
    assert!(dbusmenu::tooltip(&conn, &tray).starts_with("foolock — not running: "));
    let posted = wait_for("a notification about the port", PROMPT, || {
        let posted = recorder.posted();
        (!posted.is_empty()).then_some(posted)
    });
    assert!(posted[0].body.contains(&port.to_string()), "{posted:?}");

    let quit = menu.find("Quit").unwrap().id;
    dbusmenu::click(&conn, &tray, quit);
    let status = wait_for("the agent to exit after Quit", PROMPT, || {
        agent.child.try_wait().unwrap()
    });
    assert!(status.success(), "{status}");
}

#[test]
fn quit_stops_the_server_and_exits_cleanly() {
    let Some(desktop) = desktop::start() else {
        return;
    };
    let mut agent = Agent::serving(&desktop, &[], "");
    let conn = dbusmenu::connect(&desktop.bus_address);
    let tray = dbusmenu::wait_for_tray(&conn, agent.pid());
    let quit = dbusmenu::layout(&conn, &tray).find("Quit").unwrap().id;
    dbusmenu::click(&conn, &tray, quit);
    let status = wait_for("the agent to exit after Quit", PROMPT, || {
        agent.child.try_wait().unwrap()
    });
    assert!(status.success(), "{status}");
    assert!(TcpStream::connect(agent.addr()).is_err(), "still listening");
}

/// utime + stime of process `pid` (all its threads), in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Context switches so far of each thread of `pid`, by thread id (with its name): a thread
/// that wakes up, even for microseconds, counts one.
fn switches(pid: u32) -> std::collections::BTreeMap<String, (String, u64)> {
    let mut out = std::collections::BTreeMap::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let task = task.unwrap().path();
        let Ok(status) = std::fs::read_to_string(task.join("status")) else {
            continue; // the thread just exited
        };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_owned())
                .unwrap_or_default()
        };
        let n = field("voluntary_ctxt_switches:").parse().unwrap_or(0)
            + field("nonvoluntary_ctxt_switches:").parse().unwrap_or(0);
        let tid = task.file_name().unwrap().to_string_lossy().into_owned();
        out.insert(tid, (field("Name:"), n));
    }
    out
}

#[test]
fn idle_agent_uses_no_cpu_and_no_thread_wakes() {
    let Some(desktop) = desktop::start() else {
        return;
    };
    let agent = Agent::serving(&desktop, &[], "");
    let conn = dbusmenu::connect(&desktop.bus_address);
    let tray = dbusmenu::wait_for_tray(&conn, agent.pid());
    // A job that came and went: the countdown ran, and must have stopped with it. (Released
    // rather than left to lapse: a lapsed lease is retained, and the lock timer re-checks
    // retained leases every 60 s, which would be a legitimate wakeup.)
    acquire(agent.addr(), "blip", "laptop1", "30s");
    wait_for("blip in the menu", PROMPT, || {
        let menu = dbusmenu::layout(&conn, &tray);
        menu.find_prefix("blip").is_some().then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    let reply = request(agent.addr(), "DELETE", "/lock?job=blip&client=laptop1").unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    wait_for("the menu to be empty again", PROMPT, || {
        let menu = dbusmenu::layout(&conn, &tray);
        menu.find("No locks held").is_some().then_some(())
    });
    // Let the last redraw and the D-Bus traffic it caused settle.
    std::thread::sleep(Duration::from_secs(2));

    // Zero ticks of CPU (1 tick = 10 ms at USER_HZ 100) and zero wakeups of any thread.
    // Wakeups are the sharper measure: a leftover 1 Hz countdown costs about one tick per
    // 10 s (measured: 4 ticks in 30 s while a job is held), but ten wakeups. Past offenders
    // caught this way: tao's `dbus` feature (a thread polling every 5 s) and blocking 1.7.0
    // (idle pool threads never exit and wake every 500 ms).
    let ticks_before = cpu_ticks(agent.pid());
    let before = switches(agent.pid());
    std::thread::sleep(Duration::from_secs(10));
    let after = switches(agent.pid());
    let ticks = cpu_ticks(agent.pid()) - ticks_before;
    let woke: Vec<String> = after
        .iter()
        .filter_map(|(tid, (name, n))| {
            let was = before.get(tid).map_or(0, |b| b.1);
            (*n > was).then(|| format!("{name} (tid {tid}): {} switches", n - was))
        })
        .collect();
    assert!(
        woke.is_empty(),
        "idle agent threads woke up in 10 s: {woke:?}"
    );
    assert_eq!(
        ticks, 0,
        "idle agent used {ticks} clock ticks of CPU in 10 s"
    );
}

/// Runs `foolock agent` with `display` (None: no DISPLAY at all) and returns its first stdout
/// line and its whole stderr.
fn run_headless(display: Option<&str>) -> (String, String) {
    let config_dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(BIN);
    command
        .args(["agent", "--listen", "127.0.0.1:0", "--state-dir"])
        .arg(config_dir.path().join("state"))
        .env("FOOLOCK_CONFIG", config_dir.path().join("config.toml"))
        .env_remove("WAYLAND_DISPLAY")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match display {
        Some(d) => command.env("DISPLAY", d),
        None => command.env_remove("DISPLAY"),
    };
    let mut child = command.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (line, stderr)
}

#[test]
fn without_a_display_the_agent_says_so_and_serves_headless() {
    let (line, stderr) = run_headless(None);
    assert!(
        line.starts_with("foolock listening on 127.0.0.1:"),
        "{line:?}"
    );
    let notice: Vec<&str> = stderr.lines().collect();
    assert_eq!(notice.len(), 1, "{stderr}");
    assert!(
        notice[0].contains("running without a tray icon"),
        "{stderr}"
    );
}

#[test]
fn a_display_that_cannot_be_opened_means_headless_not_a_panic() {
    // No X server listens on display 65000 (Xvfb picks low numbers).
    let (line, stderr) = run_headless(Some(":65000"));
    assert!(
        line.starts_with("foolock listening on 127.0.0.1:"),
        "{line:?}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("running without a tray icon"), "{stderr}");
}
