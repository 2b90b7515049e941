//! `updates` collector: pending package updates, how many fix security
//! issues, and whether the host waits for a reboot (SPEC §2, Appendix A).
//!
//! - This file: the package managers Spectra knows ([`PackageManager`]) and
//!   the pure parsers of their outputs ([`parse_apt_simulation`],
//!   [`parse_dnf_check_update`], [`parse_dnf_security_list`],
//!   [`parse_zypper_xml_updates`], [`parse_pacman_query_upgrades`]), tested
//!   on fixtures.
//! - `linux.rs`: [`UpdatesCollector`]: finds the package manager on `PATH`,
//!   runs it with a timeout and an output cap, and checks the reboot flag.
//! - `unsupported.rs`: every other platform says so explicitly.
//!
//! The collector never changes the system, never refreshes package lists and
//! never holds a package-manager lock: it reports what the last refresh
//! (the host's own `apt update`, dnf makecache timer, ...) knows.
//!
//! Security rules:
//! - apt: a package is a security update when one of the origins apt would
//!   install it from has an archive containing `-security`, compared without
//!   case: Debian's `Debian-Security:12/stable-security`, older Debian's
//!   `Debian-Security:10/oldstable`, Ubuntu's `Ubuntu:22.04/jammy-security`
//!   and Ubuntu Pro's `UbuntuESM:22.04/jammy-infra-security` all match.
//! - dnf/yum: a package is a security update when a security advisory of
//!   `updateinfo list --security` names it (matched on `name.arch`).
//! - zypper: SUSE flags security on patches, which do not list their
//!   packages (that would take one `zypper info -t patch` per patch), so
//!   `security_count` is the number of needed security patches of
//!   `list-patches --category security` and every package's `security` is
//!   false. zypper takes its lock (`/run/zypp.pid`) for the few seconds of a
//!   query; a host busy with zypper answers with an error until next time.
//! - pacman: Arch publishes no security flag in its repositories, so
//!   `security_count` is a real 0 there, not an unknown.

#[cfg(target_os = "linux")]
mod linux;
#[cfg(not(target_os = "linux"))]
mod unsupported;

#[cfg(target_os = "linux")]
pub use linux::UpdatesCollector;
/// The `PATH` lookup and the bounded child runner, shared with other
/// collectors that run a tool (`container_list`'s `pvesh`, `pi`'s
/// `vcgencmd`).
#[cfg(target_os = "linux")]
pub(crate) use linux::{find_on_path, run_bounded};
#[cfg(not(target_os = "linux"))]
pub use unsupported::UpdatesCollector;

use std::collections::HashSet;

use spectra_protocol::{PendingUpdate, UpdatesMetric};

use super::{Collector, HostRoots, ParseError};

/// The collector for this platform (SPEC §2 `updates`).
pub fn new_collector(roots: &HostRoots) -> Box<dyn Collector> {
    Box::new(UpdatesCollector::new(roots))
}

/// A package manager the collector can query, in detection order: the first
/// whose binary is on `PATH` wins (a Debian host with `dnf` installed as a
/// tool is still an apt host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackageManager {
    Apt,
    Dnf,
    Yum,
    Zypper,
    Pacman,
}

impl PackageManager {
    pub const DETECTION_ORDER: [PackageManager; 5] =
        [Self::Apt, Self::Dnf, Self::Yum, Self::Zypper, Self::Pacman];

    /// The binary looked up on `PATH`.
    pub fn binary(self) -> &'static str {
        match self {
            Self::Apt => "apt-get",
            Self::Dnf => "dnf",
            Self::Yum => "yum",
            Self::Zypper => "zypper",
            Self::Pacman => "pacman",
        }
    }

    /// The `package_manager` field on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Self::Apt => "apt",
            Self::Dnf => "dnf",
            Self::Yum => "yum",
            Self::Zypper => "zypper",
            Self::Pacman => "pacman",
        }
    }
}

/// Builds the payload from the packages, counting the security ones.
pub fn compute_updates_metric(
    manager: PackageManager,
    packages: Vec<PendingUpdate>,
    reboot_required: bool,
) -> UpdatesMetric {
    let security = packages.iter().filter(|p| p.security).count();
    UpdatesMetric {
        pending_count: u32::try_from(packages.len()).unwrap_or(u32::MAX),
        security_count: u32::try_from(security).unwrap_or(u32::MAX),
        reboot_required,
        package_manager: manager.name().to_owned(),
        packages,
    }
}

/// Parses `apt-get -s dist-upgrade` (run with `LC_ALL=C`). Only the
/// `Inst` lines matter; their format is the stable one apt documents for
/// simulation, `Inst <name> [<old>] (<new> <origin>, <origin> [<arch>])`,
/// where `[<old>]` is missing for a newly installed package (a new kernel)
/// and a trailing `[]` may follow when dependencies are broken. Every other
/// line (progress, summary, `Conf`, `Remv`) is ignored. An `Inst` line that
/// does not have that shape is an error: the format changed and counts
/// would be wrong.
pub fn parse_apt_simulation(text: &str) -> Result<Vec<PendingUpdate>, ParseError> {
    let mut packages = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("Inst ") else {
            continue;
        };
        let bad = || ParseError::new("apt-get -s", format!("unexpected Inst line: {line}"));
        let (name, rest) = rest.split_once(' ').ok_or_else(bad)?;
        let rest = rest.trim_start();
        // Skip the installed version, `[<old>]`, when there is one.
        let rest = match rest.strip_prefix('[') {
            Some(after) => after.split_once(']').ok_or_else(bad)?.1.trim_start(),
            None => rest,
        };
        let inner = rest.strip_prefix('(').ok_or_else(bad)?;
        let (inner, _) = inner.split_once(')').ok_or_else(bad)?;
        let (version, origins) = inner.split_once(' ').unwrap_or((inner, ""));
        if name.is_empty() || version.is_empty() {
            return Err(bad());
        }
        packages.push(PendingUpdate {
            name: name.to_owned(),
            version: version.to_owned(),
            security: is_apt_security_origin(origins),
        });
    }
    Ok(packages)
}

/// The apt security rule of the module docs, on the origins part of an
/// `Inst` line (`Debian:12.15/stable, Debian-Security:12/stable-security
/// [amd64]`).
fn is_apt_security_origin(origins: &str) -> bool {
    origins
        .split(',')
        .any(|origin| origin.to_ascii_lowercase().contains("-security"))
}

/// One line of `dnf check-update`: `name.arch  version  repo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnfUpdate {
    /// `name.arch`, the key shared with the security advisories.
    pub name_arch: String,
    pub version: String,
}

impl DnfUpdate {
    /// The package name without its architecture.
    pub fn name(&self) -> &str {
        self.name_arch
            .rsplit_once('.')
            .map_or(self.name_arch.as_str(), |(name, _)| name)
    }
}

/// Parses `dnf -q check-update` (and `yum -q check-update`): one
/// `name.arch  [epoch:]version-release  repo` line per update. When the
/// name is too long for the column, dnf/yum put it alone on a line and the
/// version and repository on the next one; both shapes are read. The
/// `Obsoleting Packages` section that may follow lists replacements that are
/// already counted, so parsing stops there; `Security: ... is an installed
/// security update` notices and blank lines are skipped.
pub fn parse_dnf_check_update(text: &str) -> Result<Vec<DnfUpdate>, ParseError> {
    let mut updates = Vec::new();
    let mut wrapped_name: Option<&str> = None;
    for line in text.lines() {
        if line.starts_with("Obsoleting Packages") {
            break;
        }
        if line.starts_with("Security:") || line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        match (wrapped_name.take(), fields.as_slice()) {
            (Some(name_arch), [version, _repo]) => push_dnf(&mut updates, name_arch, version)?,
            (None, [name_arch]) if name_arch.contains('.') => wrapped_name = Some(name_arch),
            (None, [name_arch, version, _repo]) if name_arch.contains('.') => {
                push_dnf(&mut updates, name_arch, version)?
            }
            (Some(name_arch), _) => {
                return Err(ParseError::new(
                    "dnf check-update",
                    format!("{name_arch} is not followed by its version: {line}"),
                ))
            }
            // Headers such as "Last metadata expiration check: ..." when
            // `-q` is not honoured.
            (None, _) => {}
        }
    }
    if let Some(name_arch) = wrapped_name {
        return Err(ParseError::new(
            "dnf check-update",
            format!("{name_arch} has no version"),
        ));
    }
    Ok(updates)
}

fn push_dnf(
    updates: &mut Vec<DnfUpdate>,
    name_arch: &str,
    version: &str,
) -> Result<(), ParseError> {
    if name_arch.starts_with('.') || name_arch.ends_with('.') {
        return Err(ParseError::new(
            "dnf check-update",
            format!("bad package name {name_arch}"),
        ));
    }
    updates.push(DnfUpdate {
        name_arch: name_arch.to_owned(),
        version: version.to_owned(),
    });
    Ok(())
}

/// Architectures a NEVRA may end with (`curl-8.2.1-3.fc39.x86_64`).
const RPM_ARCHES: [&str; 11] = [
    "x86_64", "noarch", "aarch64", "i686", "i586", "i386", "ppc64le", "ppc64", "s390x", "armv7hl",
    "riscv64",
];

/// Parses `dnf -q updateinfo list --security` (and yum's): lines such as
/// `FEDORA-2023-1c2d3e4f5a Moderate/Sec.  curl-8.2.1-3.fc39.x86_64` or
/// `RHSA-2023:5312 Important/Sec. openssl-1:3.0.7-18.el9_2.x86_64`. Returns
/// the `name.arch` of every package an advisory names: the token ending in a
/// known architecture is the NEVRA, and its name is what precedes the last
/// two `-` (version and release).
pub fn parse_dnf_security_list(text: &str) -> HashSet<String> {
    let mut names = HashSet::new();
    for line in text.lines() {
        for token in line.split_whitespace().skip(1) {
            let Some((nevr, arch)) = token.rsplit_once('.') else {
                continue;
            };
            if !RPM_ARCHES.contains(&arch) {
                continue;
            }
            let mut parts = nevr.rsplitn(3, '-');
            let (Some(_release), Some(_version), Some(name)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if !name.is_empty() {
                names.insert(format!("{name}.{arch}"));
            }
        }
    }
    names
}

/// Joins `check-update` with the security advisories: the payload's
/// packages are named without their architecture.
pub fn mark_dnf_security(updates: &[DnfUpdate], security: &HashSet<String>) -> Vec<PendingUpdate> {
    updates
        .iter()
        .map(|u| PendingUpdate {
            name: u.name().to_owned(),
            version: u.version.clone(),
            security: security.contains(&u.name_arch),
        })
        .collect()
}

/// Parses `pacman -Qu`: `name old -> new` lines, read from the local sync
/// database (no refresh). Packages pacman marks `[ignored]` (IgnorePkg) are
/// not pending: `pacman -Syu` would not install them.
pub fn parse_pacman_query_upgrades(text: &str) -> Result<Vec<PendingUpdate>, ParseError> {
    let mut packages = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            [_, _, "->", _, "[ignored]"] => {}
            [name, _old, "->", new] => packages.push(PendingUpdate {
                name: (*name).to_owned(),
                version: (*new).to_owned(),
                // Module docs: Arch has no security flag.
                security: false,
            }),
            _ => {
                return Err(ParseError::new(
                    "pacman -Qu",
                    format!("unexpected line: {line}"),
                ))
            }
        }
    }
    Ok(packages)
}

/// One `<update .../>` element of zypper's `--xmlout` answers, with the
/// attributes Spectra reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ZypperUpdate {
    /// `package`, `patch`, `pattern`, `product`...
    pub kind: String,
    pub name: String,
    pub edition: String,
    /// Patches only: `security`, `recommended`, `optional`...
    pub category: String,
    /// Patches only: `needed`, `applied`, `not-needed`...
    pub status: String,
}

/// Reads every `<update ...>` start tag of zypper's XML output (`list-updates`
/// and `list-patches`) by scanning attributes: the elements are flat and
/// their attributes are all Spectra needs, so no XML library is pulled in.
/// `<update-status>` and `<update-list>` are not `<update>` and are skipped.
pub fn parse_zypper_xml_updates(xml: &str) -> Result<Vec<ZypperUpdate>, ParseError> {
    let mut updates = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find("<update") {
        let after = &rest[start + "<update".len()..];
        let Some(end) = after.find('>') else {
            return Err(ParseError::new("zypper xml", "unterminated <update tag"));
        };
        let tag = &after[..end];
        rest = &after[end..];
        if !tag.starts_with(|c: char| c.is_ascii_whitespace() || c == '/') && !tag.is_empty() {
            continue;
        }
        let mut update = ZypperUpdate::default();
        for (key, value) in scan_xml_attributes(tag)? {
            let field = match key {
                "kind" => &mut update.kind,
                "name" => &mut update.name,
                "edition" => &mut update.edition,
                "category" => &mut update.category,
                "status" => &mut update.status,
                _ => continue,
            };
            *field = value;
        }
        if update.name.is_empty() {
            return Err(ParseError::new(
                "zypper xml",
                format!("<update{tag}> has no name"),
            ));
        }
        updates.push(update);
    }
    Ok(updates)
}

/// `key="value"` pairs (either quote) of one start tag's inside, with the
/// five predefined entities decoded.
fn scan_xml_attributes(tag: &str) -> Result<Vec<(&str, String)>, ParseError> {
    let mut pairs = Vec::new();
    let mut rest = tag.trim_end_matches('/');
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return Ok(pairs);
        }
        let bad = || ParseError::new("zypper xml", format!("bad attributes: {tag}"));
        let (key, after) = rest.split_once('=').ok_or_else(bad)?;
        let after = after.trim_start();
        let quote = after.chars().next().filter(|c| *c == '"' || *c == '\'');
        let quote = quote.ok_or_else(bad)?;
        let (value, after) = after[1..].split_once(quote).ok_or_else(bad)?;
        pairs.push((key.trim(), decode_xml_entities(value)));
        rest = after;
    }
}

fn decode_xml_entities(value: &str) -> String {
    if !value.contains('&') {
        return value.to_owned();
    }
    value
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// The packages of `zypper --xmlout list-updates` (its `kind="package"`
/// elements). zypper flags security on patches, not packages, so every
/// package's `security` is false and [`count_zypper_security_patches`]
/// gives `security_count` (module docs).
pub fn select_zypper_packages(updates: &[ZypperUpdate]) -> Vec<PendingUpdate> {
    updates
        .iter()
        .filter(|u| u.kind == "package")
        .map(|u| PendingUpdate {
            name: u.name.clone(),
            version: u.edition.clone(),
            security: false,
        })
        .collect()
}

/// Needed security patches of `zypper --xmlout list-patches --category
/// security` (a missing status counts as needed: older zypper lists only
/// needed patches and omits it).
pub fn count_zypper_security_patches(patches: &[ZypperUpdate]) -> u32 {
    let needed = patches
        .iter()
        .filter(|u| u.kind == "patch" && u.category == "security")
        .filter(|u| u.status.is_empty() || u.status == "needed")
        .count();
    u32::try_from(needed).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::test_fixture;

    fn find<'a>(packages: &'a [PendingUpdate], name: &str) -> &'a PendingUpdate {
        packages
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("{name} missing"))
    }

    #[test]
    fn parses_apt_on_this_debian_12_vm() {
        let text = test_fixture("updates/apt_debian12_vm.txt");
        let packages = parse_apt_simulation(&text).unwrap();
        let inst_lines = text.lines().filter(|l| l.starts_with("Inst ")).count();
        assert_eq!(packages.len(), inst_lines);
        assert_eq!(packages.len(), 120, "the summary line says 120 upgraded");
        // Point release only: not security.
        let base = find(&packages, "base-files");
        assert_eq!(base.version, "12.4+deb12u15");
        assert!(!base.security);
        // Offered by both the point release and the security archive.
        let gcrypt = find(&packages, "libgcrypt20");
        assert_eq!(gcrypt.version, "1.10.1-3+deb12u1");
        assert!(gcrypt.security);
        // Security archive only, with the trailing `[]` of broken deps.
        assert!(find(&packages, "liblzma-dev").security);
        let metric = compute_updates_metric(PackageManager::Apt, packages, false);
        assert_eq!(metric.pending_count, 120);
        assert_eq!(metric.security_count, 69);
        assert_eq!(metric.package_manager, "apt");
    }

    #[test]
    fn parses_apt_on_debian_12_with_a_new_kernel() {
        let text = test_fixture("updates/apt_debian12_security.txt");
        let packages = parse_apt_simulation(&text).unwrap();
        let names: Vec<&str> = packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "linux-image-6.1.0-28-amd64",
                "linux-image-amd64",
                "openssh-client",
                "tzdata",
            ]
        );
        // A new package has no `[old]`.
        assert_eq!(packages[0].version, "6.1.119-1");
        assert!(packages[0].security);
        assert!(packages[2].security);
        assert!(!packages[3].security);
    }

    #[test]
    fn parses_apt_on_ubuntu_22_04() {
        let text = test_fixture("updates/apt_ubuntu2204.txt");
        let packages = parse_apt_simulation(&text).unwrap();
        assert_eq!(packages.len(), 5);
        let metric = compute_updates_metric(PackageManager::Apt, packages, true);
        assert_eq!(metric.security_count, 3);
        assert!(find(&metric.packages, "libssl3").security);
        assert!(find(&metric.packages, "libtiff5").security, "ESM infra");
        let snapd = find(&metric.packages, "snapd");
        assert_eq!(snapd.version, "2.63+22.04ubuntu0.1");
        assert!(!snapd.security, "jammy-updates only");
    }

    #[test]
    fn apt_with_nothing_to_do_is_zero() {
        let text = "Reading package lists...\nBuilding dependency tree...\n\
                    Reading state information...\nCalculating upgrade...\n\
                    0 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.\n";
        assert!(parse_apt_simulation(text).unwrap().is_empty());
    }

    #[test]
    fn apt_rejects_a_changed_inst_format() {
        let err = parse_apt_simulation("Inst foo 1.0 from somewhere\n").unwrap_err();
        assert!(err.message.contains("Inst foo"), "{err}");
    }

    #[test]
    fn parses_dnf_on_fedora_39() {
        let updates =
            parse_dnf_check_update(&test_fixture("updates/dnf_fedora39_check_update.txt")).unwrap();
        assert_eq!(updates.len(), 7);
        assert_eq!(updates[0].name_arch, "curl.x86_64");
        assert_eq!(updates[0].version, "8.2.1-5.fc39");
        // The wrapped long name.
        let wrapped = updates
            .iter()
            .find(|u| u.name() == "python3-setuptools-wheel")
            .unwrap();
        assert_eq!(wrapped.version, "67.7.2-8.fc39");
        // The epoch is kept in the version.
        assert!(updates.iter().any(|u| u.version == "2:9.0.2120-1.fc39"));

        let security = parse_dnf_security_list(&test_fixture(
            "updates/dnf_fedora39_updateinfo_security.txt",
        ));
        assert!(security.contains("curl.x86_64"));
        assert!(security.contains("libcurl.x86_64"));
        assert!(security.contains("vim-minimal.x86_64"));
        let packages = mark_dnf_security(&updates, &security);
        let metric = compute_updates_metric(PackageManager::Dnf, packages, false);
        assert_eq!(metric.pending_count, 7);
        assert_eq!(metric.security_count, 4);
        assert!(find(&metric.packages, "curl").security);
        assert!(!find(&metric.packages, "tzdata").security);
    }

    #[test]
    fn parses_rhel_advisories_with_epochs() {
        let set = parse_dnf_security_list(
            "RHSA-2023:5312 Important/Sec. openssl-1:3.0.7-18.el9_2.x86_64\n\
             RHSA-2023:5312 Important/Sec. openssl-libs-1:3.0.7-18.el9_2.i686\n",
        );
        assert!(set.contains("openssl.x86_64"));
        assert!(set.contains("openssl-libs.i686"));
        assert_eq!(set.len(), 2);
    }

    #[test]
    fn dnf_rejects_a_dangling_wrapped_name() {
        assert!(parse_dnf_check_update("python3-setuptools-wheel.noarch\n").is_err());
    }

    #[test]
    fn parses_pacman_on_arch() {
        let packages =
            parse_pacman_query_upgrades(&test_fixture("updates/pacman_arch_qu.txt")).unwrap();
        assert_eq!(
            packages.len(),
            5,
            "the ignored linux package is not pending"
        );
        assert_eq!(packages[0].name, "curl");
        assert_eq!(packages[0].version, "8.11.0-1");
        assert!(packages.iter().all(|p| !p.security));
        assert!(packages.iter().all(|p| p.name != "linux"));
    }

    #[test]
    fn pacman_rejects_an_unknown_line() {
        assert!(parse_pacman_query_upgrades("error: no database\n").is_err());
    }

    #[test]
    fn parses_zypper_on_opensuse_leap_15_5() {
        let updates =
            parse_zypper_xml_updates(&test_fixture("updates/zypper_leap155_list_updates.xml"))
                .unwrap();
        let packages = select_zypper_packages(&updates);
        assert_eq!(packages.len(), 3);
        assert_eq!(packages[0].name, "curl");
        assert_eq!(packages[0].version, "8.0.1-150400.5.44.1");
        assert_eq!(
            packages[2].name, "libxml2-2",
            "entities and digits in names"
        );
        let patches =
            parse_zypper_xml_updates(&test_fixture("updates/zypper_leap155_security_patches.xml"))
                .unwrap();
        assert_eq!(patches.len(), 3);
        assert_eq!(patches[0].name, "openSUSE-SLE-15.5-2024-1234");
        // The applied one does not count.
        assert_eq!(count_zypper_security_patches(&patches), 2);
    }

    #[test]
    fn zypper_scanner_decodes_entities_and_rejects_garbage() {
        let u = parse_zypper_xml_updates(
            "<update-list><update kind='package' name=\"a&amp;b\" edition=\"1&lt;2\"/></update-list>",
        )
        .unwrap();
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].name, "a&b");
        assert_eq!(u[0].edition, "1<2");
        assert!(parse_zypper_xml_updates("<update name=\"x").is_err());
        assert!(parse_zypper_xml_updates("<update name=x>").is_err());
    }
}
