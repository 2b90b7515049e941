//! Linux `application_list`: every package database found under the host's
//! root, merged (sources and formats in the module docs).
//!
//! Nightly and file-heavy (dpkg's status is ~1-3 MB), so `may_block`. The
//! read buffers are not kept between runs: holding megabytes for 24 h
//! would cost more RSS than re-allocating once a night.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use spectra_protocol::{Application, MetricData};
use tracing::{debug, warn};

use super::{
    application, compute_application_list, parse_apk_installed, parse_dpkg_status,
    parse_flatpak_deploy_origin, parse_metainfo_release_version, parse_pacman_desc,
    parse_rpm_query, parse_snap_yaml_version, RPM_QUERY_FORMAT,
};
use crate::collectors::updates::{find_on_path, run_bounded};
use crate::collectors::{read_file_into, CollectError, Collector, CollectorKind, HostRoots};

/// Where rpm keeps its database: SQLite on rpm ≥ 4.16, Berkeley DB or ndb
/// before; `/usr/lib/sysimage/rpm` on openSUSE and newer Fedora.
const RPM_DATABASES: [&str; 6] = [
    "var/lib/rpm/rpmdb.sqlite",
    "var/lib/rpm/Packages",
    "var/lib/rpm/Packages.db",
    "usr/lib/sysimage/rpm/rpmdb.sqlite",
    "usr/lib/sysimage/rpm/Packages",
    "usr/lib/sysimage/rpm/Packages.db",
];

/// `rpm -qa` reads every header of the database: a few seconds on a big
/// host, more on a slow disk; a stuck NFS root must not hold the thread.
pub const RPM_TIMEOUT: Duration = Duration::from_secs(60);
/// ~100 bytes per package: 16 MiB is far past any real host.
const RPM_OUTPUT_CAP_BYTES: usize = 16 << 20;
/// Used when the agent runs with no `PATH` at all.
const FALLBACK_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

pub struct ApplicationListCollector {
    rootfs: PathBuf,
    /// Where `rpm` is looked for (the agent's `PATH`).
    search_path: OsString,
    rpm_timeout: Duration,
}

/// A source's result: `None` when its database is not on this host.
type SourceResult = Result<Option<Vec<Application>>, CollectError>;

/// Reads one database under the given root.
type ReadSource = fn(&Path) -> SourceResult;

impl ApplicationListCollector {
    pub fn new(roots: &HostRoots) -> Self {
        let search_path = std::env::var_os("PATH")
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| OsString::from(FALLBACK_PATH));
        Self::with_search_path(roots, search_path, RPM_TIMEOUT)
    }

    /// Looks for `rpm` in `search_path` (a `PATH`-style list; tests put a
    /// fake one there) and gives it `timeout`.
    pub fn with_search_path(
        roots: &HostRoots,
        search_path: impl Into<OsString>,
        timeout: Duration,
    ) -> Self {
        Self {
            rootfs: roots.rootfs.clone(),
            search_path: search_path.into(),
            rpm_timeout: timeout,
        }
    }

    /// The rpm packages: `None` without an rpm database under the root;
    /// an rpm database without an `rpm` binary to read it is logged and
    /// skipped (`Ok(None)` too, with the database's path for the caller).
    fn read_rpm(&self, database: &Path) -> SourceResult {
        let Some(rpm) = find_on_path(&self.search_path, "rpm") else {
            warn!(path = %database.display(), "rpm database found but no rpm binary on PATH to read it; its packages are not listed");
            return Ok(None);
        };
        let args = rpm_query_args(&self.rootfs, database);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = run_bounded(
            &rpm,
            &args,
            &self.search_path,
            self.rpm_timeout,
            RPM_OUTPUT_CAP_BYTES,
        )?;
        if !output.status.success() {
            let first = output
                .stderr
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or("no error output");
            return Err(CollectError::Other(format!(
                "rpm -qa failed ({}): {first}",
                output.status
            )));
        }
        Ok(Some(parse_rpm_query(&output.stdout)?))
    }

    /// Every installed package of every readable database. A database that
    /// fails is logged and the others go on; the error is returned only
    /// when nothing could be read.
    pub fn read_applications(&self) -> Result<Vec<Application>, CollectError> {
        let root = self.rootfs.as_path();
        let sources: [(&str, ReadSource); 5] = [
            ("dpkg", read_dpkg),
            ("apk", read_apk),
            ("pacman", read_pacman),
            ("flatpak", read_flatpak),
            ("snap", read_snap),
        ];
        let mut apps = Vec::new();
        let mut found = false;
        let mut first_error = None;
        for (source, read) in sources {
            match read(root) {
                Ok(Some(list)) => {
                    debug!(source, packages = list.len(), "package database read");
                    found = true;
                    apps.extend(list);
                }
                Ok(None) => {}
                Err(e) => {
                    warn!(source, error = %e, "package database unreadable; skipped");
                    found = true;
                    first_error.get_or_insert(e);
                }
            }
        }
        let rpm = RPM_DATABASES
            .iter()
            .map(|p| root.join(p))
            .find(|p| p.exists());
        if let Some(database) = &rpm {
            match self.read_rpm(database) {
                Ok(Some(list)) => {
                    debug!(
                        source = "rpm",
                        packages = list.len(),
                        "package database read"
                    );
                    found = true;
                    apps.extend(list);
                }
                Ok(None) => {}
                Err(e) => {
                    warn!(source = "rpm", error = %e, "package database unreadable; skipped");
                    found = true;
                    first_error.get_or_insert(e);
                }
            }
        }
        if apps.is_empty() {
            if let Some(e) = first_error {
                return Err(e);
            }
            if !found {
                return Err(CollectError::Unsupported(match rpm {
                    Some(p) => format!(
                        "only an rpm database found ({}) and no rpm binary on PATH to read it",
                        p.display()
                    ),
                    None => "no package database found".to_owned(),
                }));
            }
        }
        Ok(apps)
    }
}

impl Collector for ApplicationListCollector {
    fn kind(&self) -> CollectorKind {
        CollectorKind::ApplicationList
    }

    fn may_block(&self) -> bool {
        true
    }

    fn collect(&mut self, _now: DateTime<Utc>) -> Result<Vec<MetricData>, CollectError> {
        let apps = self.read_applications()?;
        Ok(vec![MetricData::ApplicationList(compute_application_list(
            apps,
        ))])
    }
}

/// `rpm [--root <rootfs>] --dbpath <dir> -qa --queryformat <format>`:
/// `--root` only for another root; `--dbpath` (relative to the root, as rpm
/// reads it) is the directory of the database found, because the `rpm`
/// binary's own default may differ from the root's distribution (Debian's
/// rpm defaults to `~/.rpmdb`, Fedora's to `/usr/lib/sysimage/rpm`).
fn rpm_query_args(rootfs: &Path, database: &Path) -> Vec<String> {
    let mut args = Vec::with_capacity(7);
    if rootfs != Path::new("/") {
        args.push("--root".to_owned());
        args.push(rootfs.to_string_lossy().into_owned());
    }
    if let Some(dir) = database.parent().and_then(|d| d.strip_prefix(rootfs).ok()) {
        args.push("--dbpath".to_owned());
        args.push(Path::new("/").join(dir).to_string_lossy().into_owned());
    }
    args.extend(["-qa", "--queryformat", RPM_QUERY_FORMAT].map(str::to_owned));
    args
}

fn io_error(path: &Path, source: std::io::Error) -> CollectError {
    CollectError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads a database file, `None` when it does not exist.
fn read_optional_file(path: &Path) -> Result<Option<String>, CollectError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(path, e)),
    }
}

/// Entries of a database directory, `None` when it does not exist.
fn read_optional_dir(path: &Path) -> Result<Option<Vec<std::fs::DirEntry>>, CollectError> {
    match std::fs::read_dir(path) {
        Ok(entries) => Ok(Some(entries.flatten().collect())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(path, e)),
    }
}

fn read_dpkg(root: &Path) -> SourceResult {
    let text = read_optional_file(&root.join("var/lib/dpkg/status"))?;
    Ok(text.map(|t| parse_dpkg_status(&t)))
}

fn read_apk(root: &Path) -> SourceResult {
    let text = read_optional_file(&root.join("lib/apk/db/installed"))?;
    Ok(text.map(|t| parse_apk_installed(&t)))
}

fn read_pacman(root: &Path) -> SourceResult {
    let Some(entries) = read_optional_dir(&root.join("var/lib/pacman/local"))? else {
        return Ok(None);
    };
    let mut buf = String::new();
    let mut apps = Vec::with_capacity(entries.len());
    // `ALPM_DB_VERSION` and other files have no `desc`: skipped.
    for entry in entries {
        let desc = entry.path().join("desc");
        if read_file_into(&desc, &mut buf).is_ok() {
            match parse_pacman_desc(&buf) {
                Some(app) => apps.push(app),
                None => debug!(path = %desc.display(), "pacman desc without name or version"),
            }
        }
    }
    Ok(Some(apps))
}

fn read_flatpak(root: &Path) -> SourceResult {
    let Some(entries) = read_optional_dir(&root.join("var/lib/flatpak/app"))? else {
        return Ok(None);
    };
    let mut apps = Vec::new();
    for entry in entries {
        let id = entry.file_name().to_string_lossy().into_owned();
        let current = entry.path().join("current");
        // `current` → `<arch>/<branch>`; no link means not deployed.
        let Ok(target) = std::fs::read_link(&current) else {
            continue;
        };
        let branch = target
            .file_name()
            .map(|b| b.to_string_lossy().into_owned())
            .unwrap_or_default();
        let active = current.join("active");
        let origin = std::fs::read(active.join("deploy"))
            .ok()
            .and_then(|bytes| parse_flatpak_deploy_origin(&bytes).map(str::to_owned))
            .unwrap_or_default();
        let version = read_flatpak_release_version(&active, &id).unwrap_or(branch);
        apps.push(application(id, &version, &origin, "flatpak"));
    }
    Ok(Some(apps))
}

/// The newest release in the app's AppStream file, where it ships one.
fn read_flatpak_release_version(active: &Path, id: &str) -> Option<String> {
    let files = active.join("files/share");
    [
        format!("metainfo/{id}.metainfo.xml"),
        format!("metainfo/{id}.appdata.xml"),
        format!("appdata/{id}.appdata.xml"),
    ]
    .iter()
    .find_map(|rel| {
        let xml = std::fs::read_to_string(files.join(rel)).ok()?;
        parse_metainfo_release_version(&xml).map(str::to_owned)
    })
}

fn read_snap(root: &Path) -> SourceResult {
    let Some(entries) = read_optional_dir(&root.join("snap"))? else {
        return Ok(None);
    };
    let mut buf = String::new();
    let mut apps = Vec::new();
    // `/snap/bin` and `/snap/README` have no `current`: skipped.
    for entry in entries {
        let current = entry.path().join("current");
        if std::fs::symlink_metadata(&current).is_err() {
            continue;
        }
        let yaml = current.join("meta/snap.yaml");
        if let Err(e) = read_file_into(&yaml, &mut buf) {
            debug!(error = %e, "snap without readable meta/snap.yaml; skipped");
            continue;
        }
        let Some(version) = parse_snap_yaml_version(&buf) else {
            debug!(path = %yaml.display(), "snap.yaml without version; skipped");
            continue;
        };
        let name = entry.file_name().to_string_lossy().into_owned();
        apps.push(application(name, version, "", "snap"));
    }
    Ok(Some(apps))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture_root(name: &str) -> HostRoots {
        HostRoots {
            rootfs: PathBuf::from(format!(
                "{}/tests/fixtures/packages/{name}",
                env!("CARGO_MANIFEST_DIR")
            )),
            ..HostRoots::default()
        }
    }

    #[test]
    fn merges_pacman_flatpak_and_snap_of_one_root() {
        let mut collector = ApplicationListCollector::new(&fixture_root("arch-rootfs"));
        assert!(collector.may_block());
        let out = collector.collect(Utc::now()).unwrap();
        let [MetricData::ApplicationList(list)] = out.as_slice() else {
            panic!("{out:?}");
        };
        let got: Vec<(&str, &str, &str, &str)> = list
            .applications
            .iter()
            .map(|a| {
                (
                    a.name.as_str(),
                    a.version.as_str(),
                    a.vendor.as_str(),
                    a.source.as_deref().unwrap_or(""),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "bash",
                    "5.2.026-2",
                    "Giancarlo Razzolini <grazzolini@archlinux.org>",
                    "pacman"
                ),
                ("core22", "20240111", "", "snap"),
                (
                    "glibc",
                    "2.39-1",
                    "Frederik Schwan <freswa@archlinux.org>",
                    "pacman"
                ),
                ("htop", "3.3.0", "", "snap"),
                ("org.mozilla.firefox", "126.0", "flathub", "flatpak"),
                ("org.videolan.VLC", "stable", "flathub", "flatpak"),
            ]
        );
    }

    #[test]
    fn reads_the_apk_database_under_the_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("lib/apk/db")).unwrap();
        std::fs::write(
            dir.path().join("lib/apk/db/installed"),
            "P:musl\nV:1.2.4_git20230717-r4\nm:Natanael Copa <ncopa@alpinelinux.org>\n\n",
        )
        .unwrap();
        let roots = HostRoots {
            rootfs: dir.path().to_path_buf(),
            ..HostRoots::default()
        };
        let apps = ApplicationListCollector::new(&roots)
            .read_applications()
            .unwrap();
        assert_eq!(apps.len(), 1);
        assert_eq!(apps[0].name, "musl");
        assert_eq!(apps[0].source.as_deref(), Some("apk"));
    }

    #[test]
    fn no_database_is_unsupported_and_rpm_alone_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let roots = HostRoots {
            rootfs: dir.path().to_path_buf(),
            ..HostRoots::default()
        };
        let err = ApplicationListCollector::new(&roots)
            .collect(Utc::now())
            .unwrap_err();
        assert!(
            matches!(&err, CollectError::Unsupported(m) if m == "no package database found"),
            "{err:?}"
        );
        std::fs::create_dir_all(dir.path().join("var/lib/rpm")).unwrap();
        std::fs::write(dir.path().join("var/lib/rpm/rpmdb.sqlite"), b"SQLite").unwrap();
        // No rpm binary to read it (an empty search path).
        let empty_bin = tempfile::tempdir().unwrap();
        let err = ApplicationListCollector::with_search_path(&roots, empty_bin.path(), RPM_TIMEOUT)
            .collect(Utc::now())
            .unwrap_err();
        assert!(
            matches!(&err, CollectError::Unsupported(m) if m.contains("rpmdb.sqlite") && m.contains("no rpm binary")),
            "{err:?}"
        );
    }

    #[test]
    fn an_unreadable_database_is_an_error_when_nothing_else_was_read() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where dpkg's status file should be: reading fails.
        std::fs::create_dir_all(dir.path().join("var/lib/dpkg/status")).unwrap();
        let roots = HostRoots {
            rootfs: dir.path().to_path_buf(),
            ..HostRoots::default()
        };
        let err = ApplicationListCollector::new(&roots)
            .read_applications()
            .unwrap_err();
        assert!(matches!(err, CollectError::Io { .. }), "{err:?}");
    }

    /// A root with an rpm database and a fake `rpm` on the search path that
    /// records its arguments and prints `stdout_fixture` (or fails).
    fn rpm_host(script_body: &str) -> (tempfile::TempDir, tempfile::TempDir, HostRoots) {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("usr/lib/sysimage/rpm")).unwrap();
        std::fs::write(
            root.path().join("usr/lib/sysimage/rpm/rpmdb.sqlite"),
            b"SQLite",
        )
        .unwrap();
        let bin = tempfile::tempdir().unwrap();
        let script = bin.path().join("rpm");
        // The children's PATH is the bin dir alone: the script names its
        // own directory (`BIN`) and tools by absolute path.
        let body = script_body.replace("BIN", &bin.path().to_string_lossy());
        std::fs::write(&script, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let roots = HostRoots {
            rootfs: root.path().to_path_buf(),
            ..HostRoots::default()
        };
        (root, bin, roots)
    }

    #[test]
    fn lists_rpm_packages_by_running_rpm_under_the_root() {
        let fixture = format!(
            "{}/tests/fixtures/packages/rocky9-rpm-qa.txt",
            env!("CARGO_MANIFEST_DIR")
        );
        let (root, bin, roots) = rpm_host(&format!(
            "printf '%s\\n' \"$@\" > BIN/args; /bin/cat '{fixture}'"
        ));
        let collector = ApplicationListCollector::with_search_path(&roots, bin.path(), RPM_TIMEOUT);
        let apps = collector.read_applications().unwrap();
        let rows: Vec<(&str, &str, &str)> = apps
            .iter()
            .map(|a| (a.name.as_str(), a.version.as_str(), a.vendor.as_str()))
            .collect();
        let rocky = "Rocky Enterprise Software Foundation";
        assert_eq!(
            rows,
            [
                ("bash", "5.1.8-9.el9", rocky),
                ("glibc.x86_64", "2.34-100.el9_4.2", rocky),
                ("openssl", "1:3.0.7-27.el9", rocky),
                ("glibc.i686", "2.34-100.el9_4.2", rocky),
                ("kernel-core", "5.14.0-427.13.1.el9_4", rocky),
                ("kernel-core", "5.14.0-362.24.1.el9_3", rocky),
                ("htop", "3.3.0-1.el9", "Fedora Project"),
                ("docker-ce", "3:26.1.3-1.el9", "Docker"),
                ("tzdata", "2024a-1.el9", rocky),
                ("spectra-agent", "0.1.0-1", ""),
            ]
        );
        assert!(apps.iter().all(|a| a.source.as_deref() == Some("rpm")));
        let args = std::fs::read_to_string(bin.path().join("args")).unwrap();
        let args: Vec<&str> = args.lines().collect();
        let root_arg = root.path().to_string_lossy();
        assert_eq!(
            args[..6],
            [
                "--root",
                root_arg.as_ref(),
                "--dbpath",
                "/usr/lib/sysimage/rpm",
                "-qa",
                "--queryformat"
            ]
        );
        assert!(args[6].starts_with("%{NAME}\u{1f}"), "{:?}", args[6]);
    }

    #[test]
    fn rpm_args_name_the_root_only_when_it_is_not_slash_and_always_the_dbpath() {
        assert_eq!(
            rpm_query_args(Path::new("/"), Path::new("/var/lib/rpm/rpmdb.sqlite"))[..4],
            ["--dbpath", "/var/lib/rpm", "-qa", "--queryformat"]
        );
        let args = rpm_query_args(
            Path::new("/host"),
            Path::new("/host/usr/lib/sysimage/rpm/Packages.db"),
        );
        assert_eq!(
            args[..5],
            [
                "--root",
                "/host",
                "--dbpath",
                "/usr/lib/sysimage/rpm",
                "-qa"
            ]
        );
        assert_eq!(args[6], RPM_QUERY_FORMAT);
    }

    #[test]
    fn a_failing_rpm_is_an_error_with_its_message() {
        let (_root, bin, roots) =
            rpm_host("echo 'error: cannot open Packages database in /var/lib/rpm' >&2; exit 1");
        let err = ApplicationListCollector::with_search_path(&roots, bin.path(), RPM_TIMEOUT)
            .read_applications()
            .unwrap_err();
        assert!(
            matches!(&err, CollectError::Other(m) if m.contains("rpm -qa failed") && m.contains("cannot open Packages")),
            "{err:?}"
        );
    }

    #[test]
    fn output_not_in_the_query_format_is_a_parse_error() {
        let (_root, bin, roots) = rpm_host("echo 'bash-5.1.8-9.el9.x86_64'");
        let err = ApplicationListCollector::with_search_path(&roots, bin.path(), RPM_TIMEOUT)
            .read_applications()
            .unwrap_err();
        assert!(
            matches!(&err, CollectError::Parse { message, .. } if message.contains("line 1")),
            "{err:?}"
        );
    }
}
