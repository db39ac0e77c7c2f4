//! What is installed and how it stands, for `foolock install --status`.

use super::Mode;
use std::fmt;
use std::path::PathBuf;

/// Every kind of install this platform supports, installed or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub items: Vec<Item>,
}

/// One kind of install: its file, and what the service manager says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub mode: Mode,
    /// What it is called in messages, e.g. "login item (XDG autostart)".
    pub what: &'static str,
    pub path: PathBuf,
    pub file: FileState,
    /// False when the desktop's startup settings turned the entry off while leaving its file.
    pub enabled: bool,
    /// What launchd or systemd reports, when the file is there and it was asked.
    pub service: Option<String>,
}

/// How the file on disk compares with what `foolock install` would write now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileState {
    Missing,
    Current,
    /// Written for another binary path or an older version, or edited by hand.
    Different,
}

impl FileState {
    pub(crate) fn of(found: Option<&str>, expected: &str) -> FileState {
        match found {
            None => FileState::Missing,
            Some(f) if f == expected => FileState::Current,
            Some(_) => FileState::Different,
        }
    }
}

impl Item {
    /// Installed and not turned off: it will start at the next login (or boot).
    pub fn is_active(&self) -> bool {
        self.file != FileState::Missing && self.enabled
    }
}

impl Status {
    pub fn item(&self, mode: Mode) -> Option<&Item> {
        self.items.iter().find(|i| i.mode == mode)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.items.is_empty() {
            return writeln!(f, "foolock cannot install itself on this operating system");
        }
        for item in &self.items {
            let state = match (item.file, item.enabled) {
                (FileState::Missing, _) => "not installed",
                (_, false) => "installed, but turned off in the desktop's startup settings",
                (FileState::Current, true) => "installed",
                (FileState::Different, true) => {
                    "installed, but not as `foolock install` would write it now (another binary \
                     path, an older version, or edited); run install again to update it"
                }
            };
            writeln!(f, "{}: {state}", item.what)?;
            writeln!(f, "  file: {}", item.path.display())?;
            if let Some(service) = &item.service {
                writeln!(f, "  {service}")?;
            }
        }
        Ok(())
    }
}
