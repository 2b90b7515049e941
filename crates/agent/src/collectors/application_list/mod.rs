//! `application_list` collector: installed packages from the package
//! databases themselves, never from human-oriented command output.
//!
//! - This file: the pure parsers, one per database format
//!   ([`parse_dpkg_status`], [`parse_apk_installed`], [`parse_pacman_desc`],
//!   [`parse_snap_yaml_version`], [`parse_flatpak_deploy_origin`],
//!   [`parse_metainfo_release_version`]).
//! - `linux.rs`: [`ApplicationListCollector`] finding the databases under
//!   the host's root and merging them into one [`ApplicationListMetric`];
//!   `unsupported.rs`: every other platform.
//!
//! Per source (`source` field):
//! - `dpkg`: `<rootfs>/var/lib/dpkg/status`, deb822 stanzas. A package is
//!   listed when its `Status` state (third word) is `installed`,
//!   `triggers-pending` or `triggers-awaited` — all three mean unpacked and
//!   configured — whatever the selection (`install` or `hold`: a held
//!   package is still installed). `config-files`, `half-installed`,
//!   `unpacked`... are not. The name follows `dpkg-query`'s
//!   `${binary:Package}`: `:arch` is appended for `Multi-Arch: same`
//!   packages and for packages of a foreign architecture, the native one
//!   being the architecture of the installed `dpkg` package. Vendor is
//!   `Origin` when present, else `Maintainer`.
//! - `apk`: `<rootfs>/lib/apk/db/installed`, blank-line separated records of
//!   `X:value` lines: `P` name, `V` version, `m` maintainer (the vendor).
//!   `o` is the *origin package* (source package name), not a vendor.
//! - `pacman`: `<rootfs>/var/lib/pacman/local/<name>-<ver>/desc`, sections
//!   `%NAME%`, `%VERSION%`, `%PACKAGER%` (the vendor) each followed by value
//!   lines.
//! - `flatpak` (system installation only, `<rootfs>/var/lib/flatpak/app/`):
//!   name = app id (the directory name). `current` links to `<arch>/<branch>`
//!   and `<branch>/active` to the deployed commit. Vendor = the origin
//!   remote (`flathub`), the first string of the binary `deploy` file
//!   (a GVariant tuple whose first member is a NUL-terminated string at
//!   offset 0). Version = the newest `<release version=...>` of the app's
//!   AppStream file (`files/share/metainfo/<id>.metainfo.xml` or
//!   `.appdata.xml`; releases are listed newest first), else the branch.
//!   Per-user installations (`~/.local/share/flatpak`) are not read.
//! - `snap`: `<rootfs>/snap/<name>/current` (a link to the revision),
//!   `meta/snap.yaml` `version:` read by a small line parser. The publisher
//!   is only in snapd's large `state.json`, so vendor is empty.
//! - `rpm`: the database is binary header blobs in SQLite (`rpmdb.sqlite`,
//!   rpm ≥ 4.16), Berkeley DB (`Packages`) or ndb (`Packages.db`), so rpm
//!   itself reads it: when a database is under the root and `rpm` is on
//!   `PATH`, `rpm -qa --queryformat` [`RPM_QUERY_FORMAT`] (with
//!   `--root <rootfs>` when the root is not `/`), bounded in time and
//!   output, parsed by [`parse_rpm_query`]. Version is
//!   `[epoch:]version-release`; vendor `%{VENDOR}` (`(none)` → empty);
//!   `gpg-pubkey` entries (imported signing keys, not software) are left
//!   out; a name installed for two architectures (multilib) is listed as
//!   `name.arch`, as rpm names them. A database without an `rpm` binary to
//!   read it is logged (warn) and skipped.
//!
//! No database at all → `CollectError::Unsupported("no package database
//! found")`.

#[cfg(target_os = "linux")]
mod linux;
#[cfg(not(target_os = "linux"))]
mod unsupported;

#[cfg(target_os = "linux")]
pub use linux::ApplicationListCollector;
#[cfg(not(target_os = "linux"))]
pub use unsupported::ApplicationListCollector;

use spectra_protocol::{Application, ApplicationListMetric};

use std::collections::{HashMap, HashSet};

use super::{Collector, HostRoots, ParseError};

/// The `application_list` collector for this platform.
pub fn new_collector(roots: &HostRoots) -> Box<dyn Collector> {
    Box::new(ApplicationListCollector::new(roots))
}

/// Sorts by name then source, so the list is stable across runs.
pub fn sort_applications(apps: &mut [Application]) {
    apps.sort_unstable_by(|a, b| (&a.name, &a.source).cmp(&(&b.name, &b.source)));
}

/// The metric holding `apps`.
pub fn compute_application_list(mut apps: Vec<Application>) -> ApplicationListMetric {
    sort_applications(&mut apps);
    ApplicationListMetric { applications: apps }
}

fn application(name: String, version: &str, vendor: &str, source: &str) -> Application {
    Application {
        name,
        version: version.to_owned(),
        vendor: vendor.to_owned(),
        source: Some(source.to_owned()),
    }
}

/// The fields of one dpkg status stanza that matter here, borrowed from
/// the status text.
#[derive(Debug, Default, Clone, Copy)]
struct DpkgStanza<'a> {
    package: &'a str,
    status: &'a str,
    version: &'a str,
    architecture: &'a str,
    multi_arch_same: bool,
    maintainer: &'a str,
    origin: &'a str,
}

impl<'a> DpkgStanza<'a> {
    /// `Status: <want> <eflag> <state>`: see the module docs for the states
    /// that count as installed.
    fn is_installed(&self) -> bool {
        matches!(
            self.status.split_ascii_whitespace().nth(2),
            Some("installed" | "triggers-pending" | "triggers-awaited")
        )
    }

    fn apply_field(&mut self, name: &str, value: &'a str) {
        // deb822 field names are case-insensitive; dpkg writes them
        // capitalised, so the exact match is tried first.
        let is = |want: &str| name == want || name.eq_ignore_ascii_case(want);
        if is("Package") {
            self.package = value;
        } else if is("Status") {
            self.status = value;
        } else if is("Version") {
            self.version = value;
        } else if is("Architecture") {
            self.architecture = value;
        } else if is("Multi-Arch") {
            self.multi_arch_same = value == "same";
        } else if is("Maintainer") {
            self.maintainer = value;
        } else if is("Origin") {
            self.origin = value;
        }
    }
}

/// Keeps `stanza` when installed; the installed `dpkg` package tells the
/// native architecture.
fn keep_installed<'a>(
    stanza: DpkgStanza<'a>,
    native_arch: &mut &'a str,
    kept: &mut Vec<DpkgStanza<'a>>,
) {
    if stanza.package.is_empty() || !stanza.is_installed() {
        return;
    }
    if stanza.package == "dpkg" {
        *native_arch = stanza.architecture;
    }
    kept.push(stanza);
}

/// Parses dpkg's `status` database (deb822: `Field: value` lines,
/// continuation lines starting with a space or tab, stanzas separated by
/// blank lines) into the installed packages, named as `dpkg-query`'s
/// `${binary:Package}` names them (module docs). One pass over borrowed
/// lines; only the output is allocated.
pub fn parse_dpkg_status(text: &str) -> Vec<Application> {
    let mut stanzas: Vec<DpkgStanza<'_>> = Vec::new();
    let mut native_arch = "";
    let mut current = DpkgStanza::default();
    let mut in_stanza = false;
    for line in text.lines() {
        if line.trim().is_empty() {
            if in_stanza {
                keep_installed(current, &mut native_arch, &mut stanzas);
                current = DpkgStanza::default();
                in_stanza = false;
            }
            continue;
        }
        in_stanza = true;
        if line.starts_with([' ', '\t']) {
            continue; // continuation of a multi-line field (Description...)
        }
        if let Some((name, value)) = line.split_once(':') {
            current.apply_field(name, value.trim());
        }
    }
    if in_stanza {
        keep_installed(current, &mut native_arch, &mut stanzas);
    }
    stanzas
        .iter()
        .map(|s| {
            let foreign = !s.architecture.is_empty()
                && s.architecture != "all"
                && !native_arch.is_empty()
                && s.architecture != native_arch;
            let name = if (s.multi_arch_same || foreign) && !s.architecture.is_empty() {
                format!("{}:{}", s.package, s.architecture)
            } else {
                s.package.to_owned()
            };
            let vendor = if s.origin.is_empty() {
                s.maintainer
            } else {
                s.origin
            };
            application(name, s.version, vendor, "dpkg")
        })
        .collect()
}

/// rpm's query format: name, `[epoch:]version-release`, arch and vendor,
/// separated by the ASCII unit separator (0x1f, which no header field
/// holds; passed to rpm as the literal byte), one package per line.
pub const RPM_QUERY_FORMAT: &str =
    "%{NAME}\x1f%|EPOCH?{%{EPOCH}:}|%{VERSION}-%{RELEASE}\x1f%{ARCH}\x1f%{VENDOR}\n";

/// Parses `rpm -qa --queryformat` [`RPM_QUERY_FORMAT`] output:
///
/// ```text
/// bash\x1f5.1.8-9.el9\x1fx86_64\x1fRocky Enterprise Software Foundation
/// ```
///
/// A line without its four fields is an error naming the line: the format
/// was not applied and the list would be wrong.
pub fn parse_rpm_query(text: &str) -> Result<Vec<Application>, ParseError> {
    const WHAT: &str = "rpm -qa --queryformat";
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\x1f').collect();
        let [name, version, arch, vendor] = fields[..] else {
            return Err(ParseError::new(
                WHAT,
                format!("line {}: {} fields, want 4: {line:?}", n + 1, fields.len()),
            ));
        };
        if name.is_empty() || version.is_empty() {
            return Err(ParseError::new(
                WHAT,
                format!("line {}: empty name or version", n + 1),
            ));
        }
        if name == "gpg-pubkey" {
            continue;
        }
        let vendor = if vendor == "(none)" { "" } else { vendor };
        rows.push((name, version, arch, vendor));
    }
    // Names installed for more than one architecture.
    let mut first_arch: HashMap<&str, &str> = HashMap::new();
    let mut multilib: HashSet<&str> = HashSet::new();
    for &(name, _, arch, _) in &rows {
        if *first_arch.entry(name).or_insert(arch) != arch {
            multilib.insert(name);
        }
    }
    let mut out = Vec::with_capacity(rows.len());
    for &(name, version, arch, vendor) in &rows {
        let name = if multilib.contains(name) {
            format!("{name}.{arch}")
        } else {
            name.to_owned()
        };
        out.push(application(name, version, vendor, "rpm"));
    }
    Ok(out)
}

/// Parses apk's `installed` database: records of `X:value` lines separated
/// by blank lines (`P:` name, `V:` version, `m:` maintainer). A record
/// without a name or version is skipped.
pub fn parse_apk_installed(text: &str) -> Vec<Application> {
    let mut out = Vec::new();
    let (mut name, mut version, mut maintainer) = ("", "", "");
    let mut flush = |name: &mut &str, version: &mut &str, maintainer: &mut &str| {
        if !name.is_empty() && !version.is_empty() {
            out.push(application((*name).to_owned(), version, maintainer, "apk"));
        }
        (*name, *version, *maintainer) = ("", "", "");
    };
    for line in text.lines() {
        if line.is_empty() {
            flush(&mut name, &mut version, &mut maintainer);
            continue;
        }
        match line.split_once(':') {
            Some(("P", v)) => name = v,
            Some(("V", v)) => version = v,
            Some(("m", v)) => maintainer = v,
            _ => {}
        }
    }
    flush(&mut name, &mut version, &mut maintainer);
    out
}

/// Parses one pacman `desc` file: `%SECTION%` lines each followed by value
/// lines up to a blank line. `None` without `%NAME%` or `%VERSION%`.
pub fn parse_pacman_desc(text: &str) -> Option<Application> {
    let (mut name, mut version, mut packager) = (None, None, "");
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let value = match line {
            "%NAME%" | "%VERSION%" | "%PACKAGER%" => lines.next().unwrap_or("").trim(),
            _ => continue,
        };
        match line {
            "%NAME%" => name = Some(value),
            "%VERSION%" => version = Some(value),
            _ => packager = value,
        }
    }
    let (name, version) = (name.filter(|n| !n.is_empty())?, version?);
    Some(application(name.to_owned(), version, packager, "pacman"))
}

/// The top-level `version:` of a snap's `meta/snap.yaml`, unquoted. Only
/// unindented lines are looked at (nested `version:` keys belong to other
/// mappings).
pub fn parse_snap_yaml_version(text: &str) -> Option<&str> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix("version:")?;
        let value = value.split(" #").next().unwrap_or("").trim();
        let unquoted = value
            .strip_prefix('\'')
            .and_then(|v| v.strip_suffix('\''))
            .or_else(|| value.strip_prefix('"').and_then(|v| v.strip_suffix('"')))
            .unwrap_or(value);
        (!unquoted.is_empty()).then_some(unquoted)
    })
}

/// The origin remote of a flatpak deployment: the NUL-terminated string at
/// offset 0 of its GVariant `deploy` file.
pub fn parse_flatpak_deploy_origin(bytes: &[u8]) -> Option<&str> {
    let end = bytes.iter().position(|&b| b == 0)?;
    let origin = std::str::from_utf8(&bytes[..end]).ok()?;
    (!origin.is_empty()).then_some(origin)
}

/// The `version` attribute of the first `<release` element of an AppStream
/// metainfo file (AppStream lists releases newest first).
pub fn parse_metainfo_release_version(xml: &str) -> Option<&str> {
    let start = xml.find("<release ")?;
    let tag = &xml[start..];
    let tag = &tag[..tag.find('>')?];
    let attr = tag.find(" version=")? + " version=".len();
    let rest = &tag[attr..];
    let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let value = &rest[1..];
    let version = &value[..value.find(quote)?];
    (!version.is_empty()).then_some(version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::test_fixture;

    fn find<'a>(apps: &'a [Application], name: &str) -> &'a Application {
        apps.iter()
            .find(|a| a.name == name)
            .unwrap_or_else(|| panic!("{name} not in the list"))
    }

    #[test]
    fn parses_dpkg_status_captured_from_debian12() {
        let text = test_fixture("packages/debian12-dpkg-status");
        let apps = parse_dpkg_status(&text);
        // 41 stanzas: 40 installed, 1 `deinstall ok config-files`.
        assert_eq!(apps.len(), 40);
        assert!(apps.iter().all(|a| a.source.as_deref() == Some("dpkg")));
        assert!(
            !apps
                .iter()
                .any(|a| a.name.starts_with("removed-config-only")),
            "config-files package must be excluded"
        );
        let adduser = find(&apps, "adduser");
        assert_eq!(adduser.version, "3.134");
        assert_eq!(
            adduser.vendor,
            "Debian Adduser Developers <adduser@packages.debian.org>"
        );
        // Multi-Arch: same → `:arch`, as `${binary:Package}`.
        assert!(apps.iter().any(|a| a.name.ends_with(":amd64")));
        assert!(apps.iter().all(|a| !a.version.is_empty()));
    }

    #[test]
    fn dpkg_names_follow_binary_package_and_origin_wins_over_maintainer() {
        let text = "\
Package: dpkg
Status: install ok installed
Architecture: amd64
Version: 1.21.22
Maintainer: Dpkg Developers <debian-dpkg@lists.debian.org>

Package: libc6
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Version: 2.36-9+deb12u4
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>

Package: libc6
Status: hold ok installed
Architecture: i386
Multi-Arch: same
Version: 2.36-9+deb12u4
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>

Package: wine32
Status: install ok triggers-pending
Architecture: i386
Version: 8.0~repack-4
Maintainer: Debian Wine Party <debian-wine@lists.debian.org>

Package: ubuntu-thing
Status: install ok installed
Architecture: all
Version: 1.0
Origin: Ubuntu
Maintainer: Ubuntu Developers <ubuntu-devel-discuss@lists.ubuntu.com>
Description: two lines
 Package: not-a-package
 Status: install ok installed

Package: half
Status: install reinstreq half-installed
Architecture: amd64
Version: 1

Package: unpacked
Status: install ok unpacked
Architecture: amd64
Version: 1
";
        let apps = parse_dpkg_status(text);
        let names: Vec<&str> = apps.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "dpkg",
                "libc6:amd64",
                "libc6:i386",
                "wine32:i386",
                "ubuntu-thing"
            ]
        );
        assert_eq!(find(&apps, "ubuntu-thing").vendor, "Ubuntu");
        assert_eq!(find(&apps, "wine32:i386").version, "8.0~repack-4");
    }

    #[test]
    fn parses_apk_installed_db() {
        let text = test_fixture("packages/alpine3.19-apk-installed");
        let apps = parse_apk_installed(&text);
        let names: Vec<&str> = apps.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "musl",
                "busybox",
                "alpine-baselayout-data",
                "ca-certificates-bundle"
            ]
        );
        let busybox = find(&apps, "busybox");
        assert_eq!(busybox.version, "1.36.1-r15");
        assert_eq!(
            busybox.vendor,
            "Sören Tempel <soeren+alpine@soeren-tempel.net>"
        );
        assert_eq!(busybox.source.as_deref(), Some("apk"));
    }

    #[test]
    fn parses_pacman_desc() {
        let text = test_fixture("packages/arch-rootfs/var/lib/pacman/local/bash-5.2.026-2/desc");
        let app = parse_pacman_desc(&text).unwrap();
        assert_eq!(app.name, "bash");
        assert_eq!(app.version, "5.2.026-2");
        assert_eq!(app.vendor, "Giancarlo Razzolini <grazzolini@archlinux.org>");
        assert_eq!(app.source.as_deref(), Some("pacman"));
        assert_eq!(parse_pacman_desc("%VERSION%\n1\n"), None);
    }

    #[test]
    fn reads_snap_yaml_version_quoted_or_not() {
        assert_eq!(
            parse_snap_yaml_version("name: core22\nversion: '20240111'\nsummary: x\n"),
            Some("20240111")
        );
        assert_eq!(
            parse_snap_yaml_version("name: lxd\nversion: \"5.21.1-2d13beb\"\n"),
            Some("5.21.1-2d13beb")
        );
        assert_eq!(
            parse_snap_yaml_version("apps:\n  x:\n    version: 9\nversion: 1.2 # comment\n"),
            Some("1.2")
        );
        assert_eq!(parse_snap_yaml_version("name: x\n"), None);
    }

    #[test]
    fn reads_flatpak_origin_and_metainfo_release() {
        assert_eq!(
            parse_flatpak_deploy_origin(b"flathub\0\0\0\x01rest"),
            Some("flathub")
        );
        assert_eq!(parse_flatpak_deploy_origin(b"no-nul"), None);
        let xml = r#"<component><releases>
  <release version="126.0" date="2024-06-11"/>
  <release version='125.0.3' date="2024-04-30"/>
</releases></component>"#;
        assert_eq!(parse_metainfo_release_version(xml), Some("126.0"));
        assert_eq!(parse_metainfo_release_version("<releases/>"), None);
    }

    #[test]
    fn parses_a_rocky9_rpm_listing() {
        let apps = parse_rpm_query(&test_fixture("packages/rocky9-rpm-qa.txt")).unwrap();
        assert_eq!(apps.len(), 10, "two gpg-pubkey entries left out: {apps:?}");
        assert_eq!(
            apps[2],
            Application {
                name: "openssl".into(),
                version: "1:3.0.7-27.el9".into(),
                vendor: "Rocky Enterprise Software Foundation".into(),
                source: Some("rpm".into()),
            }
        );
        // Multilib: one name, two arches, told apart.
        assert_eq!(apps[1].name, "glibc.x86_64");
        assert_eq!(apps[3].name, "glibc.i686");
        // Two kernels of one arch keep their plain name.
        assert_eq!(apps.iter().filter(|a| a.name == "kernel-core").count(), 2);
        // `(none)` is no vendor.
        assert_eq!(apps[9].name, "spectra-agent");
        assert_eq!(apps[9].vendor, "");
    }

    #[test]
    fn rpm_lines_without_four_fields_are_an_error_naming_the_line() {
        let err = parse_rpm_query("bash\x1f5.1.8-9.el9\x1fx86_64\x1fRocky\nzsh-5.8-9.el9.x86_64\n")
            .unwrap_err();
        assert!(err.message.starts_with("line 2: 1 fields"), "{err}");
        assert!(parse_rpm_query("\x1f1.0-1\x1fx86_64\x1f\n").is_err());
        assert!(parse_rpm_query("").unwrap().is_empty());
    }
}
