#!/usr/bin/env bash
# Assembles Foolock.app from a release build, on a Mac.
#
#   packaging/macos/build-app.sh [--binary PATH] [--zip]
#
# - Builds `cargo build --release` for both aarch64-apple-darwin and x86_64-apple-darwin and
#   joins them with lipo when both Rust targets are installed (a universal app); otherwise
#   builds for this Mac only. `--binary PATH` skips the build and bundles a binary you have.
# - Lays out target/macos/Foolock.app: Contents/Info.plist (packaging/macos/Info.plist, which a
#   test keeps equal to the generator in src/platform/generate.rs), MacOS/foolock, and
#   Resources/foolock.icns made with iconutil from the PNGs in assets/icons/.
# - Signs it: ad hoc by default (Apple Silicon will not run an unsigned binary, and
#   notifications need a signed bundle), or with CODESIGN_IDENTITY="Developer ID Application: …"
#   plus the hardened runtime, ready for notarization.
# - With --zip, also writes target/macos/Foolock-<version>.zip and target/macos/foolock.rb, the
#   Homebrew cask filled in with that version and checksum (URL from RELEASE_URL_BASE, else a
#   file:// URL to the zip so `brew install --cask target/macos/foolock.rb` works locally).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

binary="" zip=0
while [[ $# -gt 0 ]]; do
    case $1 in
        --binary) binary=$2; shift 2 ;;
        --zip) zip=1; shift ;;
        -h | --help) sed -n '2,19p' "$0"; exit 0 ;;
        *) echo "build-app: unknown argument $1" >&2; exit 2 ;;
    esac
done

pkgid=$(cargo pkgid)
version=${pkgid##*[#@]}
plist=packaging/macos/Info.plist
numeric=${version%%[-+]*}
if ! grep -q "<string>$numeric</string>" "$plist"; then
    echo "build-app: $plist is not for version $version; run FOOLOCK_BLESS=1 cargo test platform::" >&2
    exit 1
fi

if [[ -z $binary ]]; then
    targets=(aarch64-apple-darwin x86_64-apple-darwin)
    installed=$(rustup target list --installed 2>/dev/null || true)
    if grep -qx "${targets[0]}" <<<"$installed" && grep -qx "${targets[1]}" <<<"$installed"; then
        slices=()
        for t in "${targets[@]}"; do
            cargo build --release --locked --target "$t"
            slices+=("target/$t/release/foolock")
        done
        mkdir -p target/macos
        binary=target/macos/foolock-universal
        lipo -create -output "$binary" "${slices[@]}"
        echo "build-app: universal binary ($(lipo -archs "$binary"))"
    else
        echo "build-app: building for this Mac only (rustup target add ${targets[*]} for a universal app)"
        cargo build --release --locked
        binary=target/release/foolock
    fi
fi
[[ -x $binary ]] || { echo "build-app: $binary is not an executable" >&2; exit 1; }

app=target/macos/Foolock.app
rm -rf "$app"
mkdir -p "$app/Contents/MacOS" "$app/Contents/Resources"
cp "$plist" "$app/Contents/Info.plist"
printf 'APPL????' >"$app/Contents/PkgInfo"
cp "$binary" "$app/Contents/MacOS/foolock"
chmod 755 "$app/Contents/MacOS/foolock"
mkdir -p "$app/Contents/Resources/man/man1" && "$app/Contents/MacOS/foolock" man >"$app/Contents/Resources/man/man1/foolock.1"

# iconutil wants an .iconset of exact names: each size at 1x and 2x.
iconset=$(mktemp -d)/foolock.iconset
trap 'rm -rf "$(dirname "$iconset")"' EXIT
mkdir -p "$iconset"
hicolor=assets/icons/hicolor
for size in 16 32 128 256 512; do
    cp "$hicolor/${size}x${size}/apps/foolock.png" "$iconset/icon_${size}x${size}.png"
    double=$((size * 2))
    if [[ $double -eq 1024 ]]; then
        cp assets/icons/foolock-1024.png "$iconset/icon_${size}x${size}@2x.png"
    else
        cp "$hicolor/${double}x${double}/apps/foolock.png" "$iconset/icon_${size}x${size}@2x.png"
    fi
done
iconutil -c icns -o "$app/Contents/Resources/foolock.icns" "$iconset"

plutil -lint "$app/Contents/Info.plist"
if [[ -n ${CODESIGN_IDENTITY:-} ]]; then
    codesign --force --options runtime --timestamp --sign "$CODESIGN_IDENTITY" "$app"
else
    codesign --force --sign - "$app"
fi
codesign --verify --strict "$app"
echo "build-app: $app ($version)"

if [[ $zip -eq 1 ]]; then
    archive=target/macos/Foolock-$version.zip
    rm -f "$archive"
    # ditto keeps the bundle's symlinks, extended attributes and signature intact; zip does not.
    ditto -c -k --keepParent "$app" "$archive"
    sha=$(shasum -a 256 "$archive" | cut -d' ' -f1)
    url_base=${RELEASE_URL_BASE:-file://$root/target/macos}
    homepage=$(sed -n 's/^repository = "\(.*\)"/\1/p' Cargo.toml | head -n1)
    sed -e "s|@VERSION@|$version|g" -e "s|@SHA256@|$sha|g" \
        -e "s|@URL_BASE@|$url_base|g" -e "s|@HOMEPAGE@|$homepage|g" \
        packaging/macos/foolock.rb >target/macos/foolock.rb
    echo "build-app: $archive (sha256 $sha), cask target/macos/foolock.rb"
fi
