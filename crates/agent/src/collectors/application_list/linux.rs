//! Linux `application_list`: every package database found under the host's
//! root, merged (sources and formats in the module docs).
//!
//! Nightly and file-heavy (dpkg's status is ~1-3 MB), so `may_block`. The
//! read buffers are not kept between runs: holding megabytes for 24 h
//! would cost more RSS than re-allocating once a night.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use spectra_protocol::{Application, MetricData};
use tracing::{debug, warn};

use super::{
    application, compute_application_list, parse_apk_installed, parse_dpkg_status,
    parse_flatpak_deploy_origin, parse_metainfo_release_version, parse_pacman_desc,
    parse_snap_yaml_version,
};
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

pub struct ApplicationListCollector {
    rootfs: PathBuf,
}

/// A source's result: `None` when its database is not on this host.
type SourceResult = Result<Option<Vec<Application>>, CollectError>;

/// Reads one database under the given root.
type ReadSource = fn(&Path) -> SourceResult;

impl ApplicationListCollector {
    pub fn new(roots: &HostRoots) -> Self {
        Self {
            rootfs: roots.rootfs.clone(),
        }
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
        if let Some(rpm) = &rpm {
            // TODO(issue 3): read rpm's header blobs (SQLite rpmdb); until
            // then rpm packages are missing from the list, said loudly.
            warn!(path = %rpm.display(), "rpm database found; reading rpm is not implemented yet, its packages are not listed");
        }
        if apps.is_empty() {
            if let Some(e) = first_error {
                return Err(e);
            }
            if !found {
                return Err(CollectError::Unsupported(match rpm {
                    Some(p) => format!(
                        "only an rpm database found ({}); reading rpm is not implemented yet",
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
        let err = ApplicationListCollector::new(&roots)
            .collect(Utc::now())
            .unwrap_err();
        assert!(
            matches!(&err, CollectError::Unsupported(m) if m.contains("rpm")),
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
}
