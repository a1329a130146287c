#!/usr/bin/env bash
# The release script: Debian packages of health_score, one per PostgreSQL major, built from
# `cargo pgrx package` (release build) with dpkg-deb:
#   target/debian/postgresql-<major>-health-score_<version>_amd64.deb
# Each holds the library, the control file, the default version's install script, the upgrade
# scripts and the frozen install scripts of earlier versions, in Debian's layout for that
# major (/usr/lib/postgresql/<major>/lib, /usr/share/postgresql/<major>/extension), depends on
# postgresql-<major> and on the C libraries the library links (dpkg-shlibdeps), and carries
# packaging/changelog and packaging/copyright. Debian 12 has packages of PostgreSQL 15 only:
# those for 16–18 are built here against PyPI's builds, for systems with PGDG's packages.
#   scripts/package.sh [MAJOR...]      (default: 15; scripts/setup.sh must know the majors)
set -euo pipefail
cd "$(dirname "$0")/.."
majors=("$@"); [ ${#majors[@]} -gt 0 ] || majors=(15)
export PGRX_HOME=${PGRX_HOME:-/var/lib/pgrx} USER=${USER:-$(id -un)} PATH="$HOME/.cargo/bin:$PATH"
version=$(bash scripts/version.sh)
arch=$(dpkg --print-architecture)
mkdir -p target/debian

for major in "${majors[@]}"; do
  pg_config="$(bash scripts/pg_bindir.sh "$major")/pg_config"
  package=postgresql-$major-health-score
  echo "== $package $version: cargo pgrx package (release)"
  log=target/debian/$package.log
  if ! cargo pgrx package --pg-config "$pg_config" >"$log" 2>&1; then cat "$log"; exit 1; fi
  built=target/release/health_score-pg$major
  pkglibdir=$("$pg_config" --pkglibdir); extdir="$("$pg_config" --sharedir)/extension"

  tree=target/debian/${package}_${version}_$arch
  rm -rf "$tree"
  lib=$tree/usr/lib/postgresql/$major/lib
  ext=$tree/usr/share/postgresql/$major/extension
  doc=$tree/usr/share/doc/$package
  install -d "$lib" "$ext" "$doc" "$tree/DEBIAN"
  install -m 644 "$built$pkglibdir/health_score.so" "$lib/"
  strip --strip-unneeded "$lib/health_score.so"   # Debian ships shared libraries stripped
  install -m 644 "$built$extdir"/health_score* "$ext/"   # control, install and upgrade scripts
  for frozen in sql/install/health_score--*.sql; do
    [ -e "$ext/$(basename "$frozen")" ] || install -m 644 "$frozen" "$ext/"
  done
  sed "1s/^health-score /$package /" packaging/changelog | gzip -9n > "$doc/changelog.Debian.gz"
  install -m 644 packaging/copyright "$doc/copyright"
  chmod 644 "$doc/changelog.Debian.gz"

  # the C libraries the library links, as dpkg-shlibdeps finds them (it wants debian/control)
  scratch=$(mktemp -d)
  mkdir "$scratch/debian"; printf 'Source: health-score\n\nPackage: %s\nArchitecture: any\n' "$package" > "$scratch/debian/control"
  shlibs=$(cd "$scratch" && dpkg-shlibdeps -O "$OLDPWD/$lib/health_score.so" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
  rm -rf "$scratch"
  [ -n "$shlibs" ] || { echo "package: dpkg-shlibdeps found no dependencies" >&2; exit 1; }

  cat > "$tree/DEBIAN/control" <<CONTROL
Package: $package
Version: $version
Architecture: $arch
Maintainer: health_score maintainers <maintainers@users.noreply.h-seed-202376b7.example>
Installed-Size: $(du -sk --exclude=DEBIAN "$tree" | cut -f1)
Depends: postgresql-$major, $shlibs
Section: database
Priority: optional
Description: explainable customer health scores inside PostgreSQL $major
 health_score scores customer health where the data lives: weighted,
 versioned models stored as JSONB, risk bands, an explanation of every
 point, snapshot history with trends and alerts, and checks of the score
 against real churn. CREATE EXTENSION health_score; in any database.
CONTROL
  (cd "$tree" && find usr -type f -print0 | sort -z | xargs -0 md5sum > DEBIAN/md5sums)
  dpkg-deb --root-owner-group -Zxz --build "$tree" "target/debian/${package}_${version}_$arch.deb" >/dev/null
  echo "== target/debian/${package}_${version}_$arch.deb"
  dpkg-deb --info "target/debian/${package}_${version}_$arch.deb" | sed -n 's/^ \(Depends\|Installed-Size\):/   \1:/p'
done
