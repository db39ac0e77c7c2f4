//! The agent's main thread: the tao event loop and the tray icon with its menu.
//!
//! The loop sleeps (`ControlFlow::Wait`) until the runtime sends an event or a menu entry is
//! clicked. Only while a job is shown does it ask to be woken when a countdown label changes
//! (the next whole-second boundary), so an idle agent uses no CPU at all. The runtime's alarm
//! does the waking: tao's `WaitUntil` does not wake on time on Linux (its GTK loop blocks in
//! `main_iteration_do(true)` with no timeout source), so we do not rely on it anywhere.
//!
//! The menu is built once and then edited in place: entries keep their ids (and the D-Bus menu
//! its item ids) unless the set of jobs changes, and text is only set when it differs, so an
//! unchanged menu sends nothing over D-Bus.
//!
//! On macOS the loop can also end without Quit: AppKit's `applicationWillTerminate` (logout,
//! Activity Monitor, a quit Apple Event) reaches us only as `LoopDestroyed`, and AppKit calls
//! `exit()` as soon as that returns. So `LoopDestroyed` stops the runtime as Quit does and waits
//! for it (for at most [`QUIT_GRACE`]) before letting go.

use super::menu::{self, IconKind, JobEntry, Listening, MenuModel};
use super::{Command, UserEvent, runtime};
use crate::engine::JobLease;
use crate::time::{Clock, SystemClock};
use anyhow::Context;
use std::process::ExitCode;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};
use tao::event::Event;
use tao::event_loop::{ControlFlow, EventLoopBuilder};
use tao::platform::run_return::EventLoopExtRunReturn;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tray_icon::menu::{
    CheckMenuItem, IsMenuItem, Menu, MenuEvent, MenuId, MenuItem, PredefinedMenuItem, Submenu,
};
use tray_icon::{Icon, MouseButtonState, TrayIcon, TrayIconBuilder, TrayIconEvent};

/// Extra sleep past a label's whole-second boundary, so the redraw lands after it, not just
/// before it (which would show the old second again).
const BOUNDARY_SLACK: Duration = Duration::from_millis(20);

/// The keep-awake menu item's label.
const KEEP_AWAKE: &str = "Keep awake while jobs are held";

/// Position of the first job entry: after the header and a separator.
const FIRST_JOB_POS: usize = 2;

/// How long a quit the system asks for (macOS `applicationWillTerminate`) waits for the server
/// to finish its requests and save, before the process exits regardless.
const QUIT_GRACE: Duration = Duration::from_secs(5);

pub fn run(settings: runtime::Settings) -> anyhow::Result<ExitCode> {
    // Who notifications come from is settled here, on the main thread, before anything posts.
    super::notifications::prepare();
    let mut event_loop = EventLoopBuilder::<UserEvent>::with_user_event().build();
    // Held until the agent exits (a token: dropping it ends the assertion).
    #[cfg(target_os = "macos")]
    let _out_of_app_nap = {
        use tao::platform::macos::{ActivationPolicy, EventLoopExtMacOS};
        // A menu bar app: no Dock icon, no app menu.
        event_loop.set_activation_policy(ActivationPolicy::Accessory);
        // tao activates the app at launch, ignoring other apps by default: a login item would
        // take focus from whatever the user is doing and close a menu they have open.
        event_loop.set_activate_ignoring_other_apps(false);
        super::mac::sys::stay_out_of_app_nap()
    };

    let proxy = event_loop.create_proxy();
    MenuEvent::set_event_handler(Some(move |e| {
        let _ = proxy.send_event(UserEvent::Menu(e));
    }));
    // Everything happens in the menu. A click on the icon (on macOS it opens the menu) is only
    // passed on as a cue to re-read a config file with an error; hovering is dropped here, so
    // it never wakes the loop. Without a handler, events would pile up in tray-icon's channel.
    let proxy = event_loop.create_proxy();
    TrayIconEvent::set_event_handler(Some(move |e| {
        if let TrayIconEvent::Click {
            button_state: MouseButtonState::Down,
            ..
        } = e
        {
            let _ = proxy.send_event(UserEvent::IconClicked);
        }
    }));

    let icons = Icons::load()?;
    let (commands, commands_rx) = mpsc::unbounded_channel();
    let (alarm, alarm_rx) = watch::channel(None);
    let shutdown = CancellationToken::new();
    let runtime = runtime::spawn(
        settings,
        runtime::Links {
            proxy: event_loop.create_proxy(),
            commands: commands_rx,
            alarm: alarm_rx,
        },
        shutdown.clone(),
    )
    .context("cannot start the server thread")?;

    let mut app = App {
        tray: None,
        tray_tried: false,
        icons,
        listening: Listening::Starting,
        jobs: Vec::new(),
        commands,
        alarm,
        paused: false,
        keep_awake: None,
        start_at_login: crate::platform::start_at_login(),
        shutdown: shutdown.clone(),
        runtime: Some(runtime),
        stopped: false,
    };
    event_loop.run_return(|event, _, control_flow| {
        // Sleep until the next event (tao's default is to poll). Never undo an exit.
        if !matches!(control_flow, ControlFlow::ExitWithCode(_)) {
            *control_flow = ControlFlow::Wait;
        }
        app.handle(event, control_flow);
    });

    // The loop only exits after the runtime said it stopped, so this join is immediate.
    if let Some(runtime) = app.runtime.take() {
        let _ = runtime.join();
    }
    drop(app.tray.take());
    Ok(ExitCode::SUCCESS)
}

/// Cancels `shutdown` and waits until `finished` says the runtime is done, for at most `grace`.
/// Returns whether it finished. Polls: it only runs while quitting, for a few seconds at most.
fn stop_within(shutdown: &CancellationToken, finished: impl Fn() -> bool, grace: Duration) -> bool {
    shutdown.cancel();
    let deadline = Instant::now() + grace;
    while !finished() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

struct App {
    /// Created by [`App::show_tray`] at the runtime's first word.
    tray: Option<Tray>,
    /// Whether creating the tray was attempted (it is, once).
    tray_tried: bool,
    icons: Icons,
    listening: Listening,
    jobs: Vec<JobLease>,
    commands: mpsc::UnboundedSender<Command>,
    /// When the runtime should send [`UserEvent::Tick`]; `None`: never.
    alarm: watch::Sender<Option<Instant>>,
    /// Whether "Pause notifications" is ticked.
    paused: bool,
    /// Whether "Keep awake while jobs are held" is ticked; `None` until the config is read
    /// (the item is not shown before).
    keep_awake: Option<bool>,
    /// Whether "Start at login" is ticked: the login item's real state at start, then each
    /// click's.
    start_at_login: bool,
    shutdown: CancellationToken,
    /// The runtime thread, joined when the loop has ended.
    runtime: Option<JoinHandle<()>>,
    /// Set once the runtime has said it stopped.
    stopped: bool,
}

impl App {
    fn handle(&mut self, event: Event<'_, UserEvent>, control_flow: &mut ControlFlow) {
        match event {
            Event::UserEvent(UserEvent::Tick) => self.render(),
            Event::UserEvent(UserEvent::Listening(listening)) => {
                self.listening = listening;
                self.show_tray();
                self.render();
            }
            Event::UserEvent(UserEvent::Jobs(jobs)) => {
                self.jobs = jobs;
                self.render();
            }
            Event::UserEvent(UserEvent::Menu(click)) => self.clicked(&click.id),
            // Only the first word counts: from then on the tick is the user's.
            Event::UserEvent(UserEvent::KeepAwake(on)) if self.keep_awake.is_none() => {
                self.keep_awake = Some(on);
                if let Some(tray) = &mut self.tray {
                    tray.add_keep_awake(on);
                }
            }
            Event::UserEvent(UserEvent::IconClicked) => {
                if matches!(self.listening, Listening::BadConfig { .. }) {
                    let _ = self.commands.send(Command::CheckConfig);
                }
            }
            Event::UserEvent(UserEvent::Stopped) => {
                self.stopped = true;
                *control_flow = ControlFlow::Exit;
            }
            Event::LoopDestroyed => self.ending(),
            _ => {}
        }
    }

    /// Creates the tray icon, once: when the runtime first says how the server stands. Not at
    /// start: a second agent finds the first one's state directory locked and leaves without
    /// ever showing an icon. (macOS wants the tray created after the loop started; any event
    /// is after that.)
    fn show_tray(&mut self) {
        if std::mem::replace(&mut self.tray_tried, true) {
            return;
        }
        match Tray::new(&self.icons, self.start_at_login, self.keep_awake) {
            Ok(tray) => self.tray = Some(tray),
            // E.g. no session bus. The server matters more than its icon: keep serving.
            Err(err) => tracing::error!(
                "cannot show the tray icon ({err:#}); the server keeps running until SIGINT or \
                 SIGTERM"
            ),
        }
    }

    /// The event loop is ending. After Quit or a signal the runtime has stopped already; if not,
    /// the system is quitting us (macOS `applicationWillTerminate`) and the process exits as
    /// soon as this returns: stop the server as Quit does, and wait for it, within reason.
    fn ending(&mut self) {
        if self.stopped {
            return;
        }
        tracing::info!("the system asked foolock to quit; stopping the server");
        let runtime = self.runtime.as_ref();
        let finished = || runtime.is_none_or(JoinHandle::is_finished);
        if stop_within(&self.shutdown, finished, QUIT_GRACE) {
            tracing::info!("server stopped; quitting");
        } else {
            tracing::warn!(
                "the server did not stop within {}s; quitting anyway",
                QUIT_GRACE.as_secs()
            );
        }
        self.stopped = true;
    }

    /// Brings the tray up to date and sets the alarm for the next label change.
    fn render(&mut self) {
        let Some(tray) = &mut self.tray else { return };
        let now = SystemClock.now();
        let model = menu::build(&self.listening, &self.jobs, &now, &local_time_of_day);
        tray.apply(&model, &self.icons);
        tracing::debug!(jobs = model.jobs.len(), next = ?model.next_change, "tray redrawn");
        self.alarm.send_replace(
            model
                .next_change
                .map(|d| Instant::now() + d + BOUNDARY_SLACK),
        );
    }

    fn clicked(&mut self, id: &MenuId) {
        let Some(tray) = &self.tray else { return };
        let command = if id == tray.quit.id() {
            tracing::info!("quit from the tray menu");
            // The runtime stops the server gracefully and then sends `Stopped`.
            self.shutdown.cancel();
            return;
        } else if id == tray.pause.id() {
            // Each click toggles the tick; mirror it rather than ask the item (see `Tray`).
            self.paused = !self.paused;
            Command::PauseNotifications(self.paused)
        } else if let (Some(item), Some(on)) = (&tray.keep_awake, self.keep_awake)
            && id == item.id()
        {
            self.keep_awake = Some(!on);
            Command::KeepAwake(!on)
        } else if id == tray.login.id() {
            self.start_at_login = !self.start_at_login;
            Command::StartAtLogin(self.start_at_login)
        } else if id == tray.open_config.id() {
            Command::OpenConfig
        } else if id == tray.open_page.id() {
            Command::OpenStatusPage
        } else if let Some(job) = tray.jobs.iter().find(|j| j.force.id() == id) {
            tracing::info!(job = job.job, "force release from the tray menu");
            Command::ForceRelease(job.job.clone())
        } else {
            return;
        };
        let _ = self.commands.send(command);
    }
}

/// The tray icon and the menu entries that change.
///
/// `pause` (like `keep_awake` and `login`) is created once, then only its id is read: on Linux, muda's menu snapshot for a
/// check item shares a non-atomic `Rc<RefCell<…>>` with ksni's D-Bus thread, which toggles it
/// on a click, so the main thread must not borrow, clone or drop it while the tray runs.
/// `icon` is the first field so it drops (stopping that thread) before the items do.
struct Tray {
    icon: TrayIcon,
    menu: Menu,
    header: MenuItem,
    /// The disabled lines after the jobs ("No locks held", a config error) and their text.
    notes: Vec<(MenuItem, String)>,
    jobs: Vec<JobWidgets>,
    pause: CheckMenuItem,
    /// "Keep awake while jobs are held", added once the config is read.
    keep_awake: Option<CheckMenuItem>,
    login: CheckMenuItem,
    open_page: MenuItem,
    open_config: MenuItem,
    quit: MenuItem,
    shown_icon: IconKind,
    shown_tooltip: String,
}

/// The "Keep awake while jobs are held" check item.
fn keep_awake_item(on: bool) -> CheckMenuItem {
    CheckMenuItem::new(KEEP_AWAKE, true, on, None)
}

/// One job's entry: a submenu with its details and "Force release".
struct JobWidgets {
    job: String,
    entry: JobEntry,
    submenu: Submenu,
    since: MenuItem,
    token: MenuItem,
    force: MenuItem,
}

impl JobWidgets {
    fn new(entry: &JobEntry) -> anyhow::Result<JobWidgets> {
        let since = MenuItem::new(&entry.since, false, None);
        let token = MenuItem::new(&entry.token, false, None);
        let force = MenuItem::new("Force release", true, None);
        let submenu = Submenu::with_items(&entry.label, true, &[&since, &token, &force])?;
        Ok(JobWidgets {
            job: entry.job.clone(),
            entry: entry.clone(),
            submenu,
            since,
            token,
            force,
        })
    }

    fn update(&mut self, entry: &JobEntry) {
        if self.entry.label != entry.label {
            self.submenu.set_text(&entry.label);
        }
        if self.entry.since != entry.since {
            self.since.set_text(&entry.since);
        }
        if self.entry.token != entry.token {
            self.token.set_text(&entry.token);
        }
        self.entry = entry.clone();
    }
}

impl Tray {
    fn new(icons: &Icons, start_at_login: bool, keep_awake: Option<bool>) -> anyhow::Result<Tray> {
        let header = MenuItem::new("Starting…", false, None);
        let pause = CheckMenuItem::new("Pause notifications", true, false, None);
        let login = CheckMenuItem::new("Start at login", true, start_at_login, None);
        let open_page = MenuItem::new("Open status page", true, None);
        let open_config = MenuItem::new("Open config file", true, None);
        let quit = MenuItem::new("Quit", true, None);
        let menu = Menu::with_items(&[
            &header,
            &PredefinedMenuItem::separator(),
            &PredefinedMenuItem::separator(),
            &pause,
            &login,
            &open_page,
            &open_config,
            &quit,
        ])?;
        let keep_awake = keep_awake.map(keep_awake_item);
        if let Some(item) = &keep_awake {
            // Right after "Pause notifications": header, separator, separator, pause.
            menu.insert(item, FIRST_JOB_POS + 2)?;
        }
        let tooltip = "foolock".to_owned();
        let builder = TrayIconBuilder::new()
            .with_id("foolock")
            .with_menu(Box::new(menu.clone()))
            .with_tooltip(&tooltip);
        let icon = icons.attach(builder, IconKind::Idle).build()?;
        Ok(Tray {
            icon,
            menu,
            header,
            notes: Vec::new(),
            jobs: Vec::new(),
            pause,
            keep_awake,
            login,
            open_page,
            open_config,
            quit,
            shown_icon: IconKind::Idle,
            shown_tooltip: tooltip,
        })
    }

    /// Makes the tray show `model`, touching only what changed.
    fn apply(&mut self, model: &MenuModel, icons: &Icons) {
        if self.header.text() != model.header {
            self.header.set_text(&model.header);
        }
        let same_jobs = self.jobs.len() == model.jobs.len()
            && self
                .jobs
                .iter()
                .zip(&model.jobs)
                .all(|(w, e)| w.job == e.job);
        if same_jobs {
            for (widgets, entry) in self.jobs.iter_mut().zip(&model.jobs) {
                widgets.update(entry);
            }
        } else {
            self.replace_jobs(&model.jobs);
        }
        self.show_notes(&model.notes);
        if self.shown_icon != model.icon {
            icons.set(&self.icon, model.icon);
            self.shown_icon = model.icon;
        }
        if self.shown_tooltip != model.tooltip {
            let _ = self.icon.set_tooltip(Some(&model.tooltip));
            self.shown_tooltip.clone_from(&model.tooltip);
        }
    }

    /// Adds "Keep awake while jobs are held", ticked if `on`, after "Pause notifications".
    fn add_keep_awake(&mut self, on: bool) {
        if self.keep_awake.is_some() {
            return;
        }
        let item = keep_awake_item(on);
        // Header, separator, the jobs, the notes, separator, pause: then this.
        let at = FIRST_JOB_POS + self.jobs.len() + self.notes.len() + 2;
        match self.menu.insert(&item, at) {
            Ok(()) => self.keep_awake = Some(item),
            Err(err) => tracing::error!("cannot add the keep-awake item to the menu: {err}"),
        }
    }

    /// Makes the lines after the jobs read `notes`: texts are set in place while their number
    /// stays, else the lines are replaced.
    fn show_notes(&mut self, notes: &[String]) {
        if self.notes.len() == notes.len() {
            for ((item, shown), text) in self.notes.iter_mut().zip(notes) {
                if shown != text {
                    item.set_text(text);
                    shown.clone_from(text);
                }
            }
            return;
        }
        for (item, _) in self.notes.drain(..) {
            let _ = self.menu.remove(&item);
        }
        let first = FIRST_JOB_POS + self.jobs.len();
        for (i, text) in notes.iter().enumerate() {
            let item = MenuItem::new(text, false, None);
            if let Err(err) = self.menu.insert(&item, first + i) {
                tracing::error!("cannot add {text:?} to the menu: {err}");
            }
            self.notes.push((item, text.clone()));
        }
    }

    /// Replaces every job entry (the set of jobs changed, so their ids must too).
    fn replace_jobs(&mut self, entries: &[JobEntry]) {
        for old in self.jobs.drain(..) {
            let _ = self.menu.remove(&old.submenu);
        }
        for (i, entry) in entries.iter().enumerate() {
            match JobWidgets::new(entry) {
                Ok(widgets) => {
                    let item: &dyn IsMenuItem = &widgets.submenu;
                    if let Err(err) = self.menu.insert(item, FIRST_JOB_POS + i) {
                        tracing::error!("cannot add {} to the menu: {err}", entry.job);
                    }
                    self.jobs.push(widgets);
                }
                Err(err) => tracing::error!("cannot build the menu entry for {}: {err}", entry.job),
            }
        }
    }
}

/// The three tray icons, decoded once from the PNGs compiled into the binary.
struct Icons {
    idle: Icon,
    held: Icon,
    error: Icon,
}

/// macOS draws template images (alpha only) in the menu bar's own colour. The bar is 22 pt high
/// and tray-icon draws a taller image at 22 pt, so a 44 px image is 1:1 on Retina displays (a
/// 32 px one would be stretched, and blurred).
#[cfg(any(test, target_os = "macos"))]
const TEMPLATE_PNGS: [&[u8]; 3] = [
    include_bytes!("../../assets/tray-idle-Template@2x.png"),
    include_bytes!("../../assets/tray-held-Template@2x.png"),
    include_bytes!("../../assets/tray-error-Template@2x.png"),
];

/// Other platforms get coloured icons, drawn to read on light and dark panels.
#[cfg(any(test, not(target_os = "macos")))]
const COLOURED_PNGS: [&[u8]; 3] = [
    include_bytes!("../../assets/tray-idle.png"),
    include_bytes!("../../assets/tray-held.png"),
    include_bytes!("../../assets/tray-error.png"),
];

impl Icons {
    fn load() -> anyhow::Result<Icons> {
        #[cfg(target_os = "macos")]
        let [idle, held, error] = TEMPLATE_PNGS;
        #[cfg(not(target_os = "macos"))]
        let [idle, held, error] = COLOURED_PNGS;
        Ok(Icons {
            idle: decode_png(idle).context("idle icon")?,
            held: decode_png(held).context("held icon")?,
            error: decode_png(error).context("error icon")?,
        })
    }

    fn get(&self, kind: IconKind) -> Icon {
        match kind {
            IconKind::Idle => self.idle.clone(),
            IconKind::Held => self.held.clone(),
            IconKind::Error => self.error.clone(),
        }
    }

    fn attach(&self, builder: TrayIconBuilder, kind: IconKind) -> TrayIconBuilder {
        #[cfg(target_os = "macos")]
        return builder.with_icon_templated(self.get(kind));
        #[cfg(not(target_os = "macos"))]
        builder.with_icon(self.get(kind))
    }

    fn set(&self, tray: &TrayIcon, kind: IconKind) {
        #[cfg(target_os = "macos")]
        let result = tray.set_icon_templated(Some(self.get(kind)));
        #[cfg(not(target_os = "macos"))]
        let result = tray.set_icon(Some(self.get(kind)));
        if let Err(err) = result {
            tracing::warn!("cannot change the tray icon: {err}");
        }
    }
}

fn decode_png(bytes: &[u8]) -> anyhow::Result<Icon> {
    let (rgba, width, height) = decode_rgba(bytes)?;
    Ok(Icon::from_rgba(rgba, width, height)?)
}

/// A PNG as 8-bit RGBA pixels, with its width and height.
fn decode_rgba(bytes: &[u8]) -> anyhow::Result<(Vec<u8>, u32, u32)> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    // Palette and 16-bit images become 8-bit RGB(A); gray stays gray (converted below).
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info()?;
    let mut buf = vec![0; reader.output_buffer_size().context("image too large")?];
    let info = reader.next_frame(&mut buf)?;
    let pixels = &buf[..info.buffer_size()];
    let rgba: Vec<u8> = match info.color_type {
        png::ColorType::Rgba => pixels.to_vec(),
        png::ColorType::Rgb => pixels
            .chunks_exact(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect(),
        png::ColorType::GrayscaleAlpha => pixels
            .chunks_exact(2)
            .flat_map(|p| [p[0], p[0], p[0], p[1]])
            .collect(),
        png::ColorType::Grayscale => pixels.iter().flat_map(|&g| [g, g, g, 255]).collect(),
        png::ColorType::Indexed => anyhow::bail!("palette image was not expanded"),
    };
    Ok((rgba, info.width, info.height))
}

/// `10:32:05` in the user's time zone.
fn local_time_of_day(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    #[cfg(unix)]
    {
        let time = libc::time_t::try_from(secs).unwrap_or(0);
        // SAFETY: localtime_r only writes into the zeroed `tm` we own.
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        if !unsafe { libc::localtime_r(&time, &mut tm) }.is_null() {
            return format!("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec);
        }
    }
    let s = secs % 86_400;
    format!("{:02}:{:02}:{:02} UTC", s / 3600, (s / 60) % 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_icons_decode() {
        Icons::load().unwrap();
    }

    #[test]
    fn mac_menu_bar_icons_are_44_px_templates_for_a_22_point_bar() {
        for png in TEMPLATE_PNGS {
            let (rgba, width, height) = decode_rgba(png).unwrap();
            assert_eq!((width, height), (44, 44));
            // A template: only alpha carries the shape, colour is the menu bar's.
            assert!(rgba.chunks_exact(4).all(|p| p[..3] == [0, 0, 0]));
            assert!(rgba.chunks_exact(4).any(|p| p[3] == 255));
        }
        for png in COLOURED_PNGS {
            assert_eq!(decode_rgba(png).unwrap().1, 32);
        }
    }

    /// An agent with no tray and `runtime` as its runtime thread, as `run` builds it.
    fn app(shutdown: &CancellationToken, runtime: JoinHandle<()>) -> App {
        App {
            tray: None,
            tray_tried: false,
            icons: Icons::load().unwrap(),
            listening: Listening::Starting,
            jobs: Vec::new(),
            commands: mpsc::unbounded_channel().0,
            alarm: watch::channel(None).0,
            paused: false,
            keep_awake: None,
            start_at_login: false,
            shutdown: shutdown.clone(),
            runtime: Some(runtime),
            stopped: false,
        }
    }

    /// A runtime thread that, once cancelled, takes `save` to "save" (sets `saved`) and ends.
    fn runtime(
        shutdown: &CancellationToken,
        save: Duration,
    ) -> (
        JoinHandle<()>,
        std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) {
        let saved = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (token, flag) = (shutdown.clone(), saved.clone());
        let handle = std::thread::spawn(move || {
            while !token.is_cancelled() {
                std::thread::sleep(Duration::from_millis(5));
            }
            std::thread::sleep(save);
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        (handle, saved)
    }

    #[test]
    fn a_quit_by_the_system_stops_the_server_and_waits_for_it_to_save() {
        let shutdown = CancellationToken::new();
        let (handle, saved) = runtime(&shutdown, Duration::from_millis(300));
        let mut app = app(&shutdown, handle);
        let mut flow = ControlFlow::Wait;
        app.handle(Event::LoopDestroyed, &mut flow);
        assert!(shutdown.is_cancelled());
        assert!(saved.load(std::sync::atomic::Ordering::SeqCst));
        assert!(app.runtime.as_ref().unwrap().is_finished());
    }

    #[test]
    fn after_quit_from_the_menu_the_loop_ends_without_waiting_again() {
        let shutdown = CancellationToken::new();
        let (handle, saved) = runtime(&shutdown, Duration::ZERO);
        let mut app = app(&shutdown, handle);
        let mut flow = ControlFlow::Wait;
        app.handle(Event::UserEvent(UserEvent::Stopped), &mut flow);
        assert_eq!(flow, ControlFlow::Exit);
        app.handle(Event::LoopDestroyed, &mut flow);
        // The runtime said it stopped, so nothing was cancelled or waited for here.
        assert!(!shutdown.is_cancelled() && !saved.load(std::sync::atomic::Ordering::SeqCst));
        shutdown.cancel();
    }

    #[test]
    fn a_server_that_does_not_stop_is_given_up_on_after_the_grace() {
        let shutdown = CancellationToken::new();
        let started = Instant::now();
        assert!(!stop_within(&shutdown, || false, Duration::from_secs(1)));
        assert!(shutdown.is_cancelled() && started.elapsed() >= Duration::from_secs(1));
        assert!(stop_within(&shutdown, || true, Duration::from_secs(1)));
    }
}
