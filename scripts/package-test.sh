#!/usr/bin/env bash
# The package test: builds the PostgreSQL 15 package (scripts/package.sh), removes the source
# install, installs the package with dpkg, checks that it owns the extension's files, runs
# the README's tour and every documentation example and the upgrade test from every frozen
# version in a fresh cluster against the packaged build, removes the package (its files must
# go) and restores the source install. Then it builds the packages of the other majors in
# HS_TEST_MAJORS and checks what they hold and depend on (Debian 12 has no PostgreSQL 16–18
# to install them on). dpkg needs root: as another user this test is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then echo "package test skipped: dpkg -i needs root"; exit 0; fi
export PGRX_HOME=${PGRX_HOME:-/var/lib/pgrx} USER=${USER:-$(id -un)} PATH="$HOME/.cargo/bin:$PATH"
version=$(bash scripts/version.sh)
package=postgresql-15-health-score
deb=target/debian/${package}_${version}_$(dpkg --print-architecture).deb
lib=/usr/lib/postgresql/15/lib/health_score.so
extdir=/usr/share/postgresql/15/extension
dir=target/package-cluster

restore_source_install() {
  bash scripts/cluster.sh stop "$dir"
  dpkg -s "$package" >/dev/null 2>&1 && dpkg -r "$package" >/dev/null
  bash scripts/install.sh 15
}
trap restore_source_install EXIT

bash scripts/package.sh 15
# the package, not a leftover source install, must provide every file
rm -f "$lib" "$extdir"/health_score.control "$extdir"/health_score--*.sql
dpkg -i "$deb"
dpkg -s "$package" | grep -qx 'Status: install ok installed'
# every version's install script (frozen or generated) and every upgrade script
scripts=("health_score--$version.sql")
for f in sql/install/health_score--*.sql sql/health_score--*--*.sql; do scripts+=("$(basename "$f")"); done
for f in "$lib" "$extdir/health_score.control" "${scripts[@]/#/$extdir/}"; do
  dpkg -S "$f" | grep -q "^$package: " || { echo "package test: $f is not the package's" >&2; exit 1; }
done
echo "== $package installed: $(dpkg -L "$package" | grep -c '^/usr/.*\.\(so\|sql\|control\)$') files of the extension"

# a fresh cluster: the tour (README.md), the documentation's examples and the upgrade test
rm -rf "$dir"
HS_CLUSTER_DIR=$dir cargo test --test cluster -- --ignored --test-threads=1 \
  documentation_examples every_frozen_version the_default_version

dpkg -r "$package" >/dev/null
if dpkg -s "$package" >/dev/null 2>&1 && dpkg -s "$package" | grep -q 'Status: install ok installed'; then
  echo "package test: $package is still installed after dpkg -r" >&2; exit 1
fi
for f in "$lib" "$extdir/health_score.control" "$extdir/health_score--$version.sql"; do
  [ ! -e "$f" ] || { echo "package test: dpkg -r left $f" >&2; exit 1; }
done
echo "== $package removed cleanly"

for major in ${HS_TEST_MAJORS:-15}; do
  [ "$major" = 15 ] && continue
  bash scripts/package.sh "$major"
  other=target/debian/postgresql-$major-health-score_${version}_$(dpkg --print-architecture).deb
  contents=$(dpkg-deb -c "$other" | awk '{print $6}')
  for f in "./usr/lib/postgresql/$major/lib/health_score.so" "./usr/share/postgresql/$major/extension/health_score.control" \
           "${scripts[@]/#/./usr/share/postgresql/$major/extension/}" \
           "./usr/share/doc/postgresql-$major-health-score/changelog.Debian.gz"; do
    grep -qxF "$f" <<<"$contents" || { echo "package test: $other lacks $f" >&2; exit 1; }
  done
  if grep -v "^\./usr/\(lib\|share\)/postgresql/$major/\|^\./usr/share/doc/\|/$" <<<"$contents" | grep -q .; then
    echo "package test: $other holds files outside Debian's layout for $major:" >&2
    grep -v "^\./usr/\(lib\|share\)/postgresql/$major/\|^\./usr/share/doc/\|/$" <<<"$contents" >&2; exit 1
  fi
  dpkg-deb -f "$other" Depends | grep -q "^postgresql-$major, " \
    || { echo "package test: $other does not depend on postgresql-$major" >&2; exit 1; }
  echo "== $other holds the extension in Debian's layout for PostgreSQL $major"
done
echo "== reinstalling from source"
