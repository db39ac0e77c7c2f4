//! Operating systems foolock cannot register a login item on yet: install says so plainly.

use super::status::Status;
use super::{InstallOptions, Mode};
use anyhow::bail;
use std::io::Write;

pub fn install(_opts: &InstallOptions, _out: &mut dyn Write) -> anyhow::Result<()> {
    bail!("foolock cannot install itself as a login item on this operating system")
}

pub fn uninstall(_opts: &InstallOptions, _out: &mut dyn Write) -> anyhow::Result<()> {
    bail!("foolock cannot install itself as a login item on this operating system")
}

pub fn status() -> anyhow::Result<Status> {
    Ok(Status { items: vec![] })
}

pub fn is_registered(_mode: Mode) -> anyhow::Result<bool> {
    Ok(false)
}
