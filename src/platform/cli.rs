//! `foolock install` and `foolock uninstall`: their flags, and the glue to the platform module.

use super::{InstallOptions, Mode, TextPath};
use anyhow::Context;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

/// Flags of `foolock install`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct InstallArgs {
    /// Linux without a desktop: install a systemd user service running `foolock serve` instead of
    /// the desktop login item
    #[arg(long)]
    pub headless: bool,
    /// Print the files that would be written and the commands that would run; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Show what is installed and whether it is running; change nothing
    #[arg(long, conflicts_with_all = ["headless", "dry_run"])]
    pub status: bool,
}

/// Flags of `foolock uninstall`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct UninstallArgs {
    /// Remove the headless systemd user service instead of the desktop login item
    #[arg(long)]
    pub headless: bool,
    /// Print the files that would be removed and the commands that would run; change nothing
    #[arg(long)]
    pub dry_run: bool,
}

fn mode(headless: bool) -> Mode {
    if headless {
        Mode::Headless
    } else {
        Mode::LoginItem
    }
}

/// `foolock install`: registers the login item (or the headless service) and starts it; with
/// `--status`, reports instead. Prints what it did; exits 0 unless something failed.
///
/// `config` is the config file foolock was pointed at (`--config`, `FOOLOCK_CONFIG`), if any:
/// the headless unit keeps it, so the service reads the same settings.
pub fn run_install(args: &InstallArgs, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    if args.status {
        write!(out, "{}", super::status()?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let config = config.map(config_text_path).transpose()?;
    let opts = InstallOptions {
        mode: mode(args.headless),
        config,
        dry_run: args.dry_run,
        launch: true,
    };
    if opts.mode == Mode::LoginItem && !cfg!(feature = "tray") {
        writeln!(
            out,
            "note: this foolock was built without the tray feature, so the login item runs the \
             server without a tray icon"
        )?;
    }
    super::install(&opts, &mut out)?;
    dry_run_trailer(opts.dry_run, &mut out)
}

/// The config path as the unit must name it: absolute (the service does not start where
/// `install` ran) and writable into a text file.
fn config_text_path(path: &Path) -> anyhow::Result<TextPath> {
    let absolute = std::path::absolute(path)
        .with_context(|| format!("cannot make the config path {} absolute", path.display()))?;
    TextPath::new(&absolute).with_context(|| {
        format!(
            "the config path {} cannot go into the service's unit",
            absolute.display()
        )
    })
}

/// Ends a dry run with a reminder, since its notes read like a real run's.
fn dry_run_trailer(dry_run: bool, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    if dry_run {
        writeln!(out, "(dry run: nothing was changed)")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `foolock uninstall`: stops and removes what `foolock install` (with the same `--headless`)
/// set up. Removing something that is not installed is not an error; it says so.
pub fn run_uninstall(args: &UninstallArgs) -> anyhow::Result<ExitCode> {
    let opts = InstallOptions {
        mode: mode(args.headless),
        config: None,
        dry_run: args.dry_run,
        launch: true,
    };
    let mut out = std::io::stdout().lock();
    super::uninstall(&opts, &mut out)?;
    dry_run_trailer(opts.dry_run, &mut out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Install {
        #[command(flatten)]
        args: InstallArgs,
    }

    #[test]
    fn status_does_not_combine_with_changing_flags() {
        assert!(Install::try_parse_from(["install", "--status", "--dry-run"]).is_err());
        assert!(Install::try_parse_from(["install", "--status", "--headless"]).is_err());
        let ok = Install::try_parse_from(["install", "--headless", "--dry-run"]).unwrap();
        assert!(ok.args.headless && ok.args.dry_run && !ok.args.status);
    }
}
