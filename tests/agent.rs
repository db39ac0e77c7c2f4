//! The desktop agent, end to end: the real `foolock agent` binary on its own X server (Xvfb)
//! and its own D-Bus session bus. The tests read the tray menu the way a panel does
//! (`com.canonical.dbusmenu.GetLayout`), click it (`…Event`), drive locks over HTTP, and stand
//! in for the desktop's notification service to record what the agent posts.
//!
//! Needs `Xvfb` and `dbus-daemon` (Debian: `xvfb dbus-x11`). Without them the GUI tests are
//! skipped with a message, except under `CI`, where they fail. Built without the `tray`
//! feature, the GUI tests are reported as ignored, never as passed.

#![cfg(target_os = "linux")]

mod support;

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
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
        let under_ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
        // GUI tests are ignored without the tray feature, so this is reached only with
        // `--ignored`, or from a GUI test that lacks the attribute: fail rather than pass.
        if !cfg!(feature = "tray") {
            panic!(
                "a GUI test needs the `tray` feature (mark it \
                 #[cfg_attr(not(feature = \"tray\"), ignore = \"needs the tray feature\")])"
            );
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
            if under_ci {
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
        Agent::start_with(desktop, args, config, &[])
    }

    /// Like [`Agent::start`], looking for programs in `bin` first.
    fn start_with_path(
        desktop: &desktop::Desktop,
        args: &[&str],
        config: &str,
        bin: Option<&Path>,
    ) -> Agent {
        let mut env = Vec::new();
        if let Some(bin) = bin {
            let mut path = std::ffi::OsString::from(bin);
            path.push(":");
            path.push(std::env::var_os("PATH").unwrap_or_default());
            env.push(("PATH", path));
        }
        Agent::start_with(desktop, args, config, &env)
    }

    /// Like [`Agent::start`], with `env` added to (or overriding) the agent's environment.
    fn start_with(
        desktop: &desktop::Desktop,
        args: &[&str],
        config: &str,
        env: &[(&str, std::ffi::OsString)],
    ) -> Agent {
        let config_dir = tempfile::tempdir().unwrap();
        std::fs::write(config_dir.path().join("config.toml"), config).unwrap();
        let child = Agent::command(desktop, config_dir.path())
            .envs(env.iter().map(|(k, v)| (k, v)))
            .arg("agent")
            .args(args)
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

    /// `foolock` on `desktop` with `home` as its home: config file `home/config.toml`; state
    /// directory, login items and the rest stay in there too.
    fn command(desktop: &desktop::Desktop, home: &std::path::Path) -> Command {
        let mut command = Command::new(BIN);
        command
            .env("FOOLOCK_CONFIG", home.join("config.toml"))
            .env("HOME", home)
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env("XDG_DATA_HOME", home.join("data"))
            .env("DISPLAY", &desktop.display)
            .env_remove("WAYLAND_DISPLAY")
            .env("DBUS_SESSION_BUS_ADDRESS", &desktop.bus_address)
            // Never the machine's real logind: keep_awake's inhibitor requests go to the test's
            // own bus, where nobody answers them unless a test puts a stand-in there.
            .env("DBUS_SYSTEM_BUS_ADDRESS", &desktop.bus_address)
            // Keep GTK from starting the accessibility bus: it is not under test.
            .env("NO_AT_BRIDGE", "1")
            .env("RUST_LOG", "warn");
        command
    }

    /// Starts the agent on a free loopback port and waits until it serves.
    fn serving(desktop: &desktop::Desktop, args: &[&str], config: &str) -> Agent {
        Agent::serving_with(desktop, args, config, &[])
    }

    /// Like [`Agent::serving`], with `env` added to the agent's environment.
    fn serving_with(
        desktop: &desktop::Desktop,
        args: &[&str],
        config: &str,
        env: &[(&str, std::ffi::OsString)],
    ) -> Agent {
        let mut all = vec!["--listen", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let mut agent = Agent::start_with(desktop, &all, config, env);
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
        send_click(conn, tray, id).expect("Event clicked");
    }

    /// Clicks Quit: the agent may exit before it answers the click, which is no failure (the
    /// caller waits for the exit itself).
    pub fn click_quit(conn: &Connection, tray: &str, id: i32) {
        match send_click(conn, tray, id) {
            Err(zbus::Error::MethodError(name, _, _))
                if name.as_str() == "org.freedesktop.DBus.Error.NoReply" => {}
            other => {
                other.expect("Event clicked");
            }
        }
    }

    fn send_click(conn: &Connection, tray: &str, id: i32) -> zbus::Result<()> {
        conn.call_method(
            Some(tray),
            "/MenuBar",
            Some("com.canonical.dbusmenu"),
            "Event",
            &(id, "clicked", Value::from(0i32), 0u32),
        )
        .map(drop)
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

    /// A label as a panel shows it: in dbusmenu a `_` marks the access key and `__` is a
    /// literal underscore.
    fn shown_label(raw: &str) -> String {
        let mut out = String::new();
        let mut chars = raw.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '_' {
                out.push(c);
            } else if chars.peek() == Some(&'_') {
                out.push(chars.next().unwrap());
            }
        }
        out
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
            label: text("label")
                .as_deref()
                .map(shown_label)
                .unwrap_or_default(),
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
// A stand-in for logind on a system bus of its own

mod logind {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::process::{Child, Command, Stdio};
    use std::sync::{Arc, Mutex};

    /// One `Inhibit` call: its arguments, and the read end of the pipe whose write end was
    /// handed out (it reads end-of-file once every copy of that end is closed).
    pub struct Call {
        pub args: [String; 4],
        pipe: OwnedFd,
    }

    impl Call {
        /// Whether the agent has closed the descriptor it was given (the lock is released).
        pub fn released(&self) -> bool {
            let mut byte = [0u8; 1];
            // SAFETY: a one-byte read into a live buffer; the descriptor is non-blocking.
            let n = unsafe { libc::read(self.pipe.as_raw_fd(), byte.as_mut_ptr().cast(), 1) };
            n == 0
        }
    }

    struct Manager {
        calls: Arc<Mutex<Vec<Call>>>,
    }

    #[zbus::interface(name = "org.freedesktop.login1.Manager")]
    impl Manager {
        /// As logind does: a FIFO whose write end is the lock.
        fn inhibit(
            &self,
            what: String,
            who: String,
            why: String,
            mode: String,
        ) -> zbus::zvariant::OwnedFd {
            let mut fds = [0; 2];
            // SAFETY: `fds` has room for the two descriptors pipe2 writes.
            let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) };
            assert_eq!(rc, 0, "pipe2");
            // SAFETY: both descriptors are fresh and owned from here on.
            let (read, write) =
                unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
            self.calls.lock().unwrap().push(Call {
                args: [what, who, why, mode],
                pipe: read,
            });
            write.into()
        }
    }

    /// A bus daemon standing in for the system bus, with `org.freedesktop.login1` on it.
    pub struct Logind {
        bus: Child,
        pub address: String,
        _conn: zbus::blocking::Connection,
        calls: Arc<Mutex<Vec<Call>>>,
    }

    impl Drop for Logind {
        fn drop(&mut self) {
            let _ = self.bus.kill();
            let _ = self.bus.wait();
        }
    }

    impl Logind {
        pub fn start() -> Logind {
            let mut bus = Command::new("dbus-daemon")
                .args(["--session", "--nofork", "--print-address=1"])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("start dbus-daemon");
            let mut address = String::new();
            std::io::BufRead::read_line(
                &mut std::io::BufReader::new(bus.stdout.take().unwrap()),
                &mut address,
            )
            .unwrap();
            let address = address.trim().to_owned();
            let calls = Arc::new(Mutex::new(Vec::new()));
            let conn = zbus::blocking::connection::Builder::address(address.as_str())
                .unwrap()
                .name("org.freedesktop.login1")
                .unwrap()
                .serve_at(
                    "/org/freedesktop/login1",
                    Manager {
                        calls: calls.clone(),
                    },
                )
                .unwrap()
                .build()
                .expect("serve org.freedesktop.login1");
            Logind {
                bus,
                address,
                _conn: conn,
                calls,
            }
        }

        /// How many `Inhibit` calls were made.
        pub fn count(&self) -> usize {
            self.calls.lock().unwrap().len()
        }

        /// The arguments of call `i`.
        pub fn args(&self, i: usize) -> [String; 4] {
            self.calls.lock().unwrap()[i].args.clone()
        }

        /// Whether the lock of call `i` was released.
        pub fn released(&self, i: usize) -> bool {
            self.calls.lock().unwrap()[i].released()
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
#[cfg_attr(not(feature = "tray"), ignore = "needs the tray feature")]
fn menu_shows_each_job_holder_and_countdown_and_counts_down() {
    let Some(desktop) = desktop::start() else {
        return;
    };
    // A grace period long enough that the 1 s lease cannot pass through it unseen.
    let agent = Agent::serving(&desktop, &["--grace-period", "30s"], "");
    let conn = dbusmenu::connect(&desktop.bus_address);
    let tray = dbusmenu::wait_for_tray(&conn, agent.pid());

    // The icon appears once the runtime reports the bound address.
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
            "Keep awake while jobs are held".into(),
            "Start at login".into(),
            "Open status page".into(),
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
        (menu.children.len() == 13).then_some(menu)
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
    assert!((15..=30).contains(&before), "{}", backup.label);
    let details: Vec<&str> = backup.children.iter().map(|c| c.label.as_str()).collect();
    assert_eq!(details.len(), 3, "{details:?}");
    assert!(details[0].starts_with("Held since "), "{details:?}");
    assert_eq!(details[0].len(), "Held since 10:32:05".len(), "{details:?}");
    assert_eq!(details[1], format!("Token {}", granted["token"]));
    assert_eq!(details[2], "Force release");

    // Soon the countdown moves on and the 1 s lease is in its grace period.
    let menu = wait_for(
        "the countdown to move and the 1 s lease to expire",
        PROMPT,
        || {
            let menu = dbusmenu::layout(&conn, &tray);
            let after = seconds_in(&menu.find_prefix("backup — laptop1 · ")?.label);
            let short = &menu.find_prefix("short — laptop2 · ")?.label;
            (after < before && short.contains("· expired, grace ")).then_some(menu)
        },
    );
    let short = &menu.find_prefix("short — laptop2 · ").unwrap().label;
    assert!((1..=30).contains(&seconds_in(short)), "{short}");
}

/// Thousands of held jobs made thousands of submenus (over a gigabyte, and a redraw at every
/// second boundary of any of them); the menu lists 20 and counts the rest in one line.
#[test]
#[cfg_attr(not(feature = "tray"), ignore = "needs the tray feature")]
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
#[cfg_attr(not(feature = "tray"), ignore = "needs the tray feature")]
fn open_status_page_hands_the_local_page_url_to_the_opener() {
    let Some(desktop) = desktop::start() else {
        return;
    };
    // A stand-in for xdg-open that writes down what it was asked to open.
    let bin = tempfile::tempdir().unwrap();
    let opened = bin.path().join("opened");
    let opener = bin.path().join("xdg-open");
    let script = format!(
        "#!/bin/sh\nprintf '%s\\n' \"$*\" > '{out}.tmp' && mv '{out}.tmp' '{out}'\n",
        out = opened.display()
    );
    support::write_executable(&opener, script);
    let mut agent =
        Agent::start_with_path(&desktop, &["--listen", "127.0.0.1:0"], "", Some(bin.path()));
    let addr = listening_addr(&mut agent.child).expect("serving");
    let conn = dbusmenu::connect(&desktop.bus_address);
    let tray = dbusmenu::wait_for_tray(&conn, agent.pid());
    let item = wait_for("the menu", PROMPT, || {
        dbusmenu::layout(&conn, &tray)
            .find("Open status page")
            .cloned()
    });
    dbusmenu::click(&conn, &tray, item.id);
    let url = wait_for("the opener to run", PROMPT, || {
        std::fs::read_to_string(&opened).ok()
    });
    assert_eq!(url.trim(), format!("http://{addr}/"));
}

#[test]
#[cfg_attr(not(feature = "tray"), ignore = "needs the tray feature")]
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
#[cfg_attr(not(feature = "tray"), ignore = "needs the tray feature")]
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
#[cfg_attr(not(feature = "tray"), ignore = "needs the tray feature")]
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
#[cfg_attr(not(feature = "tray"), ignore = "needs the tray feature")]
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
#[cfg_attr(not(feature = "tray"), ignore = "needs the tray feature")]
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
    dbusmenu::click_quit(&conn, &tray, quit);
    let status = wait_for("the agent to exit after Quit", PROMPT, || {
        agent.child.try_wait().unwrap()
    });
    assert!(status.success(), "{status}");
}

#[test]
#[cfg_attr(not(feature = "tray"), ignore = "needs the tray feature")]
fn quit_stops_the_server_and_exits_cleanly() {
    let Some(desktop) = desktop::start() else {
        return;
    };
    let mut agent = Agent::serving(&desktop, &[], "");
    let conn = dbusmenu::connect(&desktop.bus_address);
    let tray = dbusmenu::wait_for_tray(&conn, agent.pid());
    let quit = dbusmenu::layout(&conn, &tray).find("Quit").unwrap().id;
    dbusmenu::click_quit(&conn, &tray, quit);
    let status = wait_for("the agent to exit after Quit", PROMPT, || {
        agent.child.try_wait().unwrap()
    });
    assert!(status.success(), "{status}");
    assert!(TcpStream::connect(agent.addr()).is_err(), "still listening");
}

/// Replaces `path` as editors that save atomically do: a new file renamed over the old one.
fn save(path: &std::path::Path, text: &str) {
    let partial = path.with_extension("toml.new");
    std::fs::write(&partial, text).unwrap();
    std::fs::rename(&partial, path).unwrap();
}

#[test]
#[cfg_attr(not(feature = "tray"), ignore = "needs the tray feature")]
fn a_bad_config_file_is_shown_in_the_menu_and_serving_starts_once_it_is_saved_fixed() {
    let Some(desktop) = desktop::start() else {
        return;
    };
    let recorder = notifications::Recorder::start(&desktop.bus_address);
    let mut agent = Agent::start(
        &desktop,
        &["--listen", "127.0.0.1:0"],
        "# my settings\ngrace = \"5s\"\n",
    );
    let config = agent._config_dir.path().join("config.toml");
    let conn = dbusmenu::connect(&desktop.bus_address);
    let tray = dbusmenu::wait_for_tray(&conn, agent.pid());
    let shows = |what: &str| {
        wait_for(what, PROMPT, || {
            let menu = dbusmenu::layout(&conn, &tray);
            (menu.labels()[0] == "Not serving: the config file has an error"
                && menu.labels().iter().any(|l| l.starts_with(what)))
            .then_some(menu)
        })
    };

    let menu = shows("line 2, key `grace`: unknown field `grace`");
    let labels = menu.labels();
    assert_eq!(labels[2], config.display().to_string(), "{labels:?}");
    assert_eq!(labels[4], "Fix it and save it: foolock then starts serving");
    assert!(!menu.children[3].enabled, "the error is not clickable");
    assert!(
        labels.contains(&"Open config file".to_owned()),
        "{labels:?}"
    );
    assert!(labels.contains(&"Quit".to_owned()), "{labels:?}");
    assert!(!labels.contains(&"No locks held".to_owned()), "{labels:?}");
    // Nothing is served, so there is nothing to keep the machine awake for.
    assert!(
        !labels.contains(&"Keep awake while jobs are held".to_owned()),
        "{labels:?}"
    );
    assert_eq!(
        dbusmenu::tooltip(&conn, &tray),
        "foolock — not running: the config file has an error"
    );
    let posted = wait_for("the config error notification", PROMPT, || {
        let posted = recorder.posted();
        (!posted.is_empty()).then_some(posted)
    });
    assert_eq!(
        posted[0].summary,
        "foolock is not serving: the config file has an error"
    );
    assert!(
        posted[0]
            .body
            .starts_with(&format!("{}, line 2, key `grace`: ", config.display())),
        "{posted:?}"
    );

    // Still wrong after an edit: the menu follows, with no second notification; no restart.
    save(&config, "max_jobs = 0\n");
    shows("line 1, key `max_jobs`: must be at least 1");
    assert!(
        agent.child.try_wait().unwrap().is_none(),
        "the agent exited"
    );

    // Saved right (written in place this time): the server starts with it.
    std::fs::write(&config, "grace_period = \"3s\"\n").unwrap();
    let addr = listening_addr(&mut agent.child)
        .unwrap_or_else(|line| panic!("unexpected first line: {line:?}"));
    wait_for("the listening header", PROMPT, || {
        let menu = dbusmenu::layout(&conn, &tray);
        (menu.labels()[0] == format!("Listening on {addr}")).then_some(())
    });
    let keep_awake = wait_for("the keep-awake item", PROMPT, || {
        dbusmenu::layout(&conn, &tray)
            .find("Keep awake while jobs are held")
            .cloned()
    });
    assert_eq!(keep_awake.toggle_state, Some(1));
    acquire(addr, "backup", "laptop1", "1s");
    let status = request(addr, "GET", "/lock?job=backup").unwrap();
    assert_eq!(status.body["holder"], "laptop1", "{}", status.body);
    assert_eq!(recorder.posted().len(), 1, "{:?}", recorder.posted());
}

#[test]
fn without_a_tray_a_bad_config_file_still_exits_2() {
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("config.toml");
    std::fs::write(&config, "grace = \"5s\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["agent", "--listen", "127.0.0.1:0"])
        .env("FOOLOCK_CONFIG", &config)
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown key `grace`"), "{stderr}");
}

/// A directory holding a stand-in for `xdg-open` that records its arguments in `args` and
/// succeeds, or, once a file `fail` exists beside it, fails as the real one does when no
/// desktop app takes the file (a message on stderr, exit 3). Returns it and a `PATH` with it
/// first.
fn fake_opener() -> (tempfile::TempDir, std::ffi::OsString) {
    let bin = tempfile::tempdir().unwrap();
    let script = bin.path().join("xdg-open");
    support::write_executable(
        &script,
        "#!/bin/sh\n\
         dir=$(dirname \"$0\")\n\
         printf '%s\\n' \"$@\" >> \"$dir/args\"\n\
         if [ -e \"$dir/fail\" ]; then\n\
         \techo \"xdg-open: no method available for opening '$1'\" >&2\n\
         \texit 3\n\
         fi\n",
    );
    let mut dirs = vec![bin.path().to_owned()];
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    let path = std::env::join_paths(dirs).unwrap();
    (bin, path)
}

#[test]
#[cfg_attr(not(feature = "tray"), ignore = "needs the tray feature")]
fn open_config_file_runs_the_opener_and_notifies_when_it_fails_even_while_paused() {
    let Some(desktop) = desktop::start() else {
        return;
    };
    let recorder = notifications::Recorder::start(&desktop.bus_address);
    let (bin, path) = fake_opener();
    let agent = Agent::serving_with(&desktop, &[], "", &[("PATH", path)]);
    let config = agent._config_dir.path().join("config.toml");
    let conn = dbusmenu::connect(&desktop.bus_address);
    let tray = dbusmenu::wait_for_tray(&conn, agent.pid());
    let click = |label: &str| {
        let id = dbusmenu::layout(&conn, &tray).find(label).unwrap().id;
        dbusmenu::click(&conn, &tray, id);
    };

    click("Open config file");
    let args = wait_for("the opener to be run", PROMPT, || {
        std::fs::read_to_string(bin.path().join("args")).ok()
    });
    assert_eq!(args, format!("{}\n", config.display()));

    // Pause is for lock events; a click that did nothing must still be explained.
    click("Pause notifications");
    wait_for("the pause tick", PROMPT, || {
        let menu = dbusmenu::layout(&conn, &tray);
        (menu.find("Pause notifications")?.toggle_state == Some(1)).then_some(())
    });
    std::fs::write(bin.path().join("fail"), "").unwrap();
    click("Open config file");
    let posted = wait_for("a notification that the file did not open", PROMPT, || {
        let posted = recorder.posted();
        (!posted.is_empty()).then_some(posted)
    });
    assert_eq!(
        posted.len(),
        1,
        "the successful open posted nothing: {posted:?}"
    );
    assert_eq!(posted[0].summary, "Cannot open the config file");
    let expected = format!("no method available for opening '{}'", config.display());
    assert!(posted[0].body.contains(&expected), "{posted:?}");
    assert!(posted[0].body.contains("in a text editor"), "{posted:?}");
}

#[test]
#[cfg_attr(not(feature = "tray"), ignore = "needs the tray feature")]
fn a_second_agent_finds_the_first_and_exits_quietly_without_an_icon() {
    let Some(desktop) = desktop::start() else {
        return;
    };
    let first = Agent::serving(&desktop, &[], "");
    let conn = dbusmenu::connect(&desktop.bus_address);
    dbusmenu::wait_for_tray(&conn, first.pid());

    // Every bus name that comes or goes from here on, to see whether the second one ever put
    // up a tray.
    let names = zbus::blocking::MessageIterator::for_match_rule(
        zbus::MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .interface("org.freedesktop.DBus")
            .unwrap()
            .member("NameOwnerChanged")
            .unwrap()
            .build(),
        &conn,
        Some(10_000),
    )
    .unwrap();

    // The README's steps: the app opened by hand, then `foolock install` starts another with
    // the same home, config and port.
    let mut second = Agent::command(&desktop, first._config_dir.path())
        .args(["agent", "--listen", &first.addr().to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = support::wait_exit(&mut second, PROMPT);
    let (mut stdout, mut stderr) = (String::new(), String::new());
    second
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    second
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{status}: {stderr}");
    assert_eq!(stdout, "", "the second agent never served");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with("foolock: already running (another foolock uses ")
            && lines[0].ends_with("); this one exits"),
        "{stderr}"
    );
    // The bus reports name changes in order: once a marker name taken now shows up, any name
    // the second agent ever took has shown up before it.
    let marker = dbusmenu::connect(&desktop.bus_address);
    marker.request_name("org.foolock.Test.Marker").unwrap();
    let mut seen = Vec::new();
    for message in names {
        let (name, _, _): (String, String, String) = message.unwrap().body().deserialize().unwrap();
        if name == "org.foolock.Test.Marker" {
            break;
        }
        seen.push(name);
    }
    let second_tray = format!("org.kde.StatusNotifierItem-{}-1", second.id());
    assert!(!seen.contains(&second_tray), "a second icon: {seen:?}");
    // The first one is unaffected.
    acquire(first.addr(), "backup", "laptop1", "30s");
}

#[test]
#[cfg_attr(not(feature = "tray"), ignore = "needs the tray feature")]
fn keep_awake_holds_one_logind_idle_sleep_lock_while_jobs_are_held_and_closes_it_after() {
    let Some(desktop) = desktop::start() else {
        return;
    };
    let logind = logind::Logind::start();
    let system_bus = ("DBUS_SYSTEM_BUS_ADDRESS", logind.address.clone().into());
    let agent = Agent::serving_with(&desktop, &[], "", &[system_bus]);
    let conn = dbusmenu::connect(&desktop.bus_address);
    let tray = dbusmenu::wait_for_tray(&conn, agent.pid());
    let item = || {
        wait_for("the keep-awake item", PROMPT, || {
            dbusmenu::layout(&conn, &tray)
                .find("Keep awake while jobs are held")
                .cloned()
        })
    };
    assert_eq!(item().toggle_type.as_deref(), Some("checkmark"));
    assert_eq!(item().toggle_state, Some(1), "on by default");
    let labels = dbusmenu::layout(&conn, &tray).labels();
    let pause = labels
        .iter()
        .position(|l| l == "Pause notifications")
        .unwrap();
    assert_eq!(
        labels[pause + 1],
        "Keep awake while jobs are held",
        "{labels:?}"
    );

    acquire(agent.addr(), "backup", "laptop1", "60s");
    wait_for("an Inhibit call", PROMPT, || {
        (logind.count() == 1).then_some(())
    });
    let [what, who, why, mode] = logind.args(0);
    assert_eq!(
        (what.as_str(), who.as_str(), mode.as_str()),
        ("idle:sleep", "foolock", "block")
    );
    assert!(!why.is_empty());
    acquire(agent.addr(), "sync", "phone", "60s");
    let release = |job: &str, client: &str| {
        let path = format!("/lock?job={job}&client={client}");
        let reply = request(agent.addr(), "DELETE", &path).unwrap();
        assert_eq!(reply.status, 200, "{}", reply.body);
    };
    release("backup", "laptop1");
    assert!(!logind.released(0), "released while sync is still held");
    release("sync", "phone");
    wait_for("the lock to be released", PROMPT, || {
        logind.released(0).then_some(())
    });
    assert_eq!(
        logind.count(),
        1,
        "one lock for the whole stretch of held jobs"
    );

    // The menu switch: off lets go at once while a job is held; on takes a new lock.
    acquire(agent.addr(), "backup", "laptop1", "60s");
    wait_for("a second Inhibit call", PROMPT, || {
        (logind.count() == 2).then_some(())
    });
    dbusmenu::click(&conn, &tray, item().id);
    wait_for("the untick", PROMPT, || {
        (item().toggle_state == Some(0)).then_some(())
    });
    wait_for("the lock to be released", PROMPT, || {
        logind.released(1).then_some(())
    });
    dbusmenu::click(&conn, &tray, item().id);
    wait_for("a third Inhibit call", PROMPT, || {
        (logind.count() == 3).then_some(())
    });
    release("backup", "laptop1");
    wait_for("the lock to be released", PROMPT, || {
        logind.released(2).then_some(())
    });
}

#[test]
#[cfg_attr(not(feature = "tray"), ignore = "needs the tray feature")]
fn keep_awake_off_in_the_config_starts_unticked_and_takes_no_lock_until_ticked() {
    let Some(desktop) = desktop::start() else {
        return;
    };
    let logind = logind::Logind::start();
    let system_bus = ("DBUS_SYSTEM_BUS_ADDRESS", logind.address.clone().into());
    let agent = Agent::serving_with(&desktop, &[], "keep_awake = false\n", &[system_bus]);
    let conn = dbusmenu::connect(&desktop.bus_address);
    let tray = dbusmenu::wait_for_tray(&conn, agent.pid());
    let item = || {
        wait_for("the keep-awake item", PROMPT, || {
            dbusmenu::layout(&conn, &tray)
                .find("Keep awake while jobs are held")
                .cloned()
        })
    };
    assert_eq!(item().toggle_state, Some(0));
    acquire(agent.addr(), "backup", "laptop1", "60s");
    wait_for("backup in the menu", PROMPT, || {
        let menu = dbusmenu::layout(&conn, &tray);
        menu.find_prefix("backup").is_some().then_some(())
    });
    assert_eq!(logind.count(), 0, "a lock although keep_awake = false");
    dbusmenu::click(&conn, &tray, item().id);
    wait_for("an Inhibit call once ticked", PROMPT, || {
        (logind.count() == 1).then_some(())
    });
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
#[cfg_attr(not(feature = "tray"), ignore = "needs the tray feature")]
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
