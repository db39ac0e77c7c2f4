# Homebrew cask template for Foolock.app. packaging/macos/build-app.sh --zip fills in the
# @…@ fields and writes the result to target/macos/foolock.rb; publish that in a tap.
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

  uninstall launchctl: "io.foolock.agent",
            quit:      "io.foolock.agent"

  zap trash: [
    "~/Library/Application Support/io.foolock.foolock",
    "~/Library/LaunchAgents/io.foolock.agent.plist",
    "~/Library/Logs/foolock",
  ]

  caveats <<~EOS
    To start Foolock now and at every login, run:
      foolock install
  EOS
end
