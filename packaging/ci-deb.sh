#!/usr/bin/env bash
# Builds the .deb and checks that every file is in its place, with the right mode, and that the
# shipped desktop entry and unit are the checked-in ones. Called by .ci/run; exits non-zero on
# anything missing or wrong. This is also how to build the package yourself.
#
#   bash packaging/ci-deb.sh [--no-build]    (--no-build: reuse target/release/foolock)
#
# The man page and shell completions are made by the built binary itself (`foolock man`,
# `foolock completions SHELL`) into target/assets/, which Cargo.toml's deb assets name; so the
# binary is built first and `cargo deb` then packages it without building again.
#
# Needs: cargo-deb, dpkg-deb, desktop-file-validate (Debian desktop-file-utils).
set -euo pipefail
cd "$(dirname "$0")/.."

out=target/debian/ci
rm -rf "$out"
mkdir -p "$out"
if [[ ${1:-} != --no-build ]]; then
    cargo build --release --locked
fi
bin=target/release/foolock
mkdir -p target/assets
"$bin" man | gzip -9n >target/assets/foolock.1.gz
"$bin" completions bash >target/assets/foolock.bash
"$bin" completions zsh >target/assets/_foolock
"$bin" completions fish >target/assets/foolock.fish
cargo deb --locked --no-build --output "$out/"

debs=("$out"/*.deb)
[[ ${#debs[@]} -eq 1 && -f ${debs[0]} ]] || { echo "ci-deb: expected one .deb in $out, found: ${debs[*]}" >&2; exit 1; }
deb=${debs[0]}
echo "ci-deb: built $deb"

# Mode and path of each file we ship. Icons: every hicolor size rendered in assets/.
expected=(
    "-rwxr-xr-x ./usr/bin/foolock"
    "-rw-r--r-- ./usr/share/applications/foolock.desktop"
    "-rw-r--r-- ./usr/lib/systemd/user/foolock.service"
    "-rw-r--r-- ./usr/share/icons/hicolor/scalable/apps/foolock.svg"
    "-rw-r--r-- ./usr/share/doc/foolock/README.md"
    "-rw-r--r-- ./usr/share/doc/foolock/copyright"
    "-rw-r--r-- ./usr/share/man/man1/foolock.1.gz"
    "-rw-r--r-- ./usr/share/bash-completion/completions/foolock"
    "-rw-r--r-- ./usr/share/zsh/vendor-completions/_foolock"
    "-rw-r--r-- ./usr/share/fish/vendor_completions.d/foolock.fish"
)
for size in 16 22 24 32 48 64 128 256 512; do
    expected+=("-rw-r--r-- ./usr/share/icons/hicolor/${size}x${size}/apps/foolock.png")
done

# `dpkg-deb -c` prints tar-style lines: mode owner size date time path.
listing=$(dpkg-deb -c "$deb" | awk '{print $1, $6}')
missing=0
for want in "${expected[@]}"; do
    if ! grep -qxF -- "$want" <<<"$listing"; then
        echo "ci-deb: MISSING or wrong mode: $want" >&2
        missing=1
    fi
done
if [[ $missing -ne 0 ]]; then
    echo "ci-deb: the package contains:" >&2
    dpkg-deb -c "$deb" >&2
    exit 1
fi
echo "ci-deb: all ${#expected[@]} files in place"

# The control fields: right package, version from Cargo.toml.
pkgid=$(cargo pkgid)
version=${pkgid##*[#@]}
[[ $(dpkg-deb -f "$deb" Package) == foolock ]] || { echo "ci-deb: Package is not foolock" >&2; exit 1; }
case $(dpkg-deb -f "$deb" Version) in
    "$version" | "$version"-*) ;;
    *) echo "ci-deb: Version $(dpkg-deb -f "$deb" Version) does not match Cargo.toml's $version" >&2; exit 1 ;;
esac

# What is shipped is what is checked in (and that is what the generators make; see the
# checked_in_* tests), and the desktop entry validates.
unpacked=$(mktemp -d)
trap 'rm -rf "$unpacked"' EXIT
dpkg-deb -x "$deb" "$unpacked"
cmp packaging/linux/foolock.desktop "$unpacked/usr/share/applications/foolock.desktop"
cmp packaging/linux/foolock.service "$unpacked/usr/lib/systemd/user/foolock.service"
desktop-file-validate "$unpacked/usr/share/applications/foolock.desktop"
"$unpacked/usr/bin/foolock" --version
# The man page is the shipped binary's own and reads as one.
gzip -dc "$unpacked/usr/share/man/man1/foolock.1.gz" | grep -q '^\.TH foolock 1' ||
    { echo "ci-deb: the man page is not a foolock(1) page" >&2; exit 1; }
echo "ci-deb: ok"
