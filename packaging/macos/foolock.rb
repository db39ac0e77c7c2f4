# Homebrew cask template for Foolock.app. packaging/macos/build-app.sh --zip fills in the
# @…@ fields and writes the result to target/macos/foolock.rb; publish that in a tap.
#
# The login item (~/Library/LaunchAgents/io.foolock.agent.plist, written by `foolock install`)
# must survive `brew upgrade`. Homebrew runs a cask's `uninstall` directives on every upgrade
# and reinstall too, except `signal:` (Library/Homebrew/cask/artifact/uninstall.rb,
# UPGRADE_REINSTALL_SKIP_DIRECTIVES), so:
# - no `uninstall launchctl:` (it would `launchctl remove` the agent and delete its plist on
#   each upgrade) and no `uninstall quit:` (it would stop the agent on each upgrade, and recent
#   Homebrew then reopens the app outside launchd);
# - `uninstall signal:` stops a running agent on a real uninstall only (SIGTERM is foolock's
#   graceful shutdown: it saves its state and exits 0, so launchd does not restart it);
# - `postflight` restarts the login item, if there is one, on the binary just installed;
# - `zap` removes the login item; so does `foolock uninstall`.
cask "foolock" do
  version "@VERSION@"
  sha256 "@SHA256@"

  url "@URL_BASE@/Foolock-#{version}.zip"
  name "Foolock"
  desc "Lease-lock referee for devices that share a synced folder"
  homepage "@HOMEPAGE@"

  depends_on macos: ">= :big_sur"

  app "Foolock.app"
  # The CLI is the app's own binary: `foolock install` then points the login item at the app,
  # so notifications carry its name and icon.
  binary "#{appdir}/Foolock.app/Contents/MacOS/foolock"

  postflight do
    plist = File.expand_path("~/Library/LaunchAgents/io.foolock.agent.plist")
    if File.exist?(plist)
      domain = "gui/#{Process.uid}"
      service = "#{domain}/io.foolock.agent"
      loaded = system_command("/bin/launchctl", args: ["print", service],
                                                must_succeed: false, print_stderr: false).success?
      if loaded
        # -k: stop the agent still running the replaced binary, then start the new one.
        system_command "/bin/launchctl", args: ["kickstart", "-k", service], must_succeed: false
      else
        system_command "/bin/launchctl", args: ["bootstrap", domain, plist], must_succeed: false
      end
    end
  end

  uninstall signal: [["TERM", "io.foolock.agent"]]

  zap launchctl: "io.foolock.agent",
      trash:     [
        "~/Library/Application Support/io.foolock.foolock",
        "~/Library/LaunchAgents/io.foolock.agent.plist",
        "~/Library/Logs/foolock",
      ]

  caveats <<~EOS
    To start Foolock now and at every login, run:
      foolock install
    Upgrades keep the login item and restart Foolock. To remove the login item, run
    `foolock uninstall` before `brew uninstall --cask foolock`, or uninstall with --zap.
  EOS
end
