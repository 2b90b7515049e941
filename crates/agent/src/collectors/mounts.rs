//! The mount table: [`parse_mountinfo`] / [`parse_proc_mounts`] (pure) and
//! [`read_mounts`] for the `LIST_MOUNTS` command (and, later, the `disk`
//! collector).
//!
//! `<procfs>/self/mountinfo` (proc(5), kernel
//! `Documentation/filesystems/proc.rst` §3.5) is preferred: it has the
//! mount's root, the optional propagation fields and the super-block
//! options. `<procfs>/mounts` (fstab(5) format) is the fallback for kernels
//! before 2.6.26. Both escape space, tab, newline and backslash in paths as
//! `\040`, `\011`, `\012`, `\134`.
//!
//! Note: `self` is the agent's own mount namespace. An agent in a container
//! sees the host's mounts only when it shares the host's mount namespace or
//! is given the host's `/proc` as `SPECTRA_PROCFS` with `/proc/1` readable.

use spectra_protocol::MountEntry;

use super::{CollectError, HostRoots, ParseError};

/// One line of `/proc/<pid>/mountinfo`:
///
/// ```text
/// 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
/// (1)(2)(3)   (4)   (5)      (6)       (7)   (8) (9)    (10)         (11)
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfoEntry {
    pub mount_id: u32,
    pub parent_id: u32,
    pub major: u32,
    pub minor: u32,
    /// The directory of the filesystem that forms this mount's root.
    pub root: String,
    pub mount_point: String,
    pub mount_options: String,
    /// `shared:N`, `master:N`, `propagate_from:N`, `unbindable`.
    pub optional_fields: Vec<String>,
    pub fs_type: String,
    /// Device or other source (`/dev/sda1`, `tmpfs`, `server:/export`).
    pub source: String,
    pub super_options: String,
}

/// Parses a whole mountinfo file.
pub fn parse_mountinfo(text: &str) -> Result<Vec<MountInfoEntry>, ParseError> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(parse_mountinfo_line)
        .collect()
}

fn parse_mountinfo_line(line: &str) -> Result<MountInfoEntry, ParseError> {
    let bad = |why: &str| ParseError::new("mountinfo", format!("{why} in line {line:?}"));
    let mut fields = line.split(' ');
    let mut next = |name: &str| fields.next().ok_or_else(|| bad(&format!("missing {name}")));
    let mount_id = next("mount id")?.parse().map_err(|_| bad("bad mount id"))?;
    let parent_id = next("parent id")?
        .parse()
        .map_err(|_| bad("bad parent id"))?;
    let (major, minor) = next("major:minor")?
        .split_once(':')
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
        .ok_or_else(|| bad("bad major:minor"))?;
    let root = unescape_octal(next("root")?);
    let mount_point = unescape_octal(next("mount point")?);
    let mount_options = next("mount options")?.to_owned();
    // Zero or more optional fields, ended by a lone "-".
    let mut optional_fields = Vec::new();
    loop {
        match next("\"-\" separator")? {
            "-" => break,
            field => optional_fields.push(field.to_owned()),
        }
    }
    let fs_type = unescape_octal(next("filesystem type")?);
    let source = unescape_octal(next("source")?);
    let super_options = next("super options")?.to_owned();
    Ok(MountInfoEntry {
        mount_id,
        parent_id,
        major,
        minor,
        root,
        mount_point,
        mount_options,
        optional_fields,
        fs_type,
        source,
        super_options,
    })
}

/// Parses `/proc/mounts`: `source mountpoint fstype options dump pass`.
pub fn parse_proc_mounts(text: &str) -> Result<Vec<MountEntry>, ParseError> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let mut f = line.split_ascii_whitespace();
            match (f.next(), f.next(), f.next()) {
                (Some(device), Some(mountpoint), Some(fstype)) => Ok(MountEntry {
                    mountpoint: unescape_octal(mountpoint),
                    device: unescape_octal(device),
                    fstype: unescape_octal(fstype),
                }),
                _ => Err(ParseError::new(
                    "/proc/mounts",
                    format!("fewer than 3 fields in line {line:?}"),
                )),
            }
        })
        .collect()
}

/// Undoes the kernel's `\ooo` escapes (three octal digits); anything else,
/// including a backslash not followed by three octal digits, is kept as is.
pub fn unescape_octal(field: &str) -> String {
    if !field.contains('\\') {
        return field.to_owned();
    }
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).filter(|d| {
            bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)) && d[0] <= b'3'
        });
        match octal {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl From<MountInfoEntry> for MountEntry {
    fn from(e: MountInfoEntry) -> Self {
        MountEntry {
            mountpoint: e.mount_point,
            device: e.source,
            fstype: e.fs_type,
        }
    }
}

/// The mount table for `LIST_MOUNTS`: `<procfs>/self/mountinfo`, falling
/// back to `<procfs>/mounts`. Unsupported off Linux for now.
pub fn read_mounts(roots: &HostRoots) -> Result<Vec<MountEntry>, CollectError> {
    platform::read_mounts(roots)
}

#[cfg(target_os = "linux")]
mod platform {
    use super::*;

    pub(super) fn read_mounts(roots: &HostRoots) -> Result<Vec<MountEntry>, CollectError> {
        let mountinfo = roots.procfs.join("self/mountinfo");
        match std::fs::read_to_string(&mountinfo) {
            Ok(text) => {
                let entries = parse_mountinfo(&text)?;
                return Ok(entries.into_iter().map(MountEntry::from).collect());
            }
            Err(e) => tracing::debug!(
                path = %mountinfo.display(),
                error = %e,
                "no mountinfo, falling back to mounts"
            ),
        }
        let path = roots.procfs.join("mounts");
        let text =
            std::fs::read_to_string(&path).map_err(|source| CollectError::Io { path, source })?;
        Ok(parse_proc_mounts(&text)?)
    }
}

#[cfg(not(target_os = "linux"))]
mod platform {
    use super::*;

    pub(super) fn read_mounts(_roots: &HostRoots) -> Result<Vec<MountEntry>, CollectError> {
        Err(CollectError::Unsupported(format!(
            "listing mounts is not implemented for {} yet",
            std::env::consts::OS
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::test_fixture as fixture;

    #[test]
    fn parses_proc5_example_with_optional_field() {
        let line = "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue";
        let e = &parse_mountinfo(line).unwrap()[0];
        assert_eq!((e.mount_id, e.parent_id, e.major, e.minor), (36, 35, 98, 0));
        assert_eq!(e.root, "/mnt1");
        assert_eq!(e.mount_point, "/mnt2");
        assert_eq!(e.optional_fields, vec!["master:1"]);
        assert_eq!(e.fs_type, "ext3");
        assert_eq!(e.source, "/dev/root");
        assert_eq!(e.super_options, "rw,errors=continue");
    }

    #[test]
    fn parses_several_or_no_optional_fields() {
        let two = "29 1 8:1 / / rw,relatime shared:1 master:2 - ext4 /dev/sda1 rw";
        assert_eq!(
            parse_mountinfo(two).unwrap()[0].optional_fields,
            vec!["shared:1", "master:2"]
        );
        let none = "22 27 0:21 / /proc rw,relatime - proc proc rw";
        assert!(parse_mountinfo(none).unwrap()[0].optional_fields.is_empty());
    }

    #[test]
    fn unescapes_octal_in_paths() {
        let line = "40 27 8:17 / /media/My\\040Disk\\011x rw - vfat /dev/sdb1 rw";
        let e = &parse_mountinfo(line).unwrap()[0];
        assert_eq!(e.mount_point, "/media/My Disk\tx");
        assert_eq!(unescape_octal("back\\134slash"), "back\\slash");
        assert_eq!(unescape_octal("not\\9octal\\04"), "not\\9octal\\04");
    }

    #[test]
    fn rejects_mountinfo_line_without_separator_or_with_bad_ids() {
        assert!(parse_mountinfo("36 35 98:0 / /mnt rw master:1 ext3 /dev/root rw").is_err());
        assert!(parse_mountinfo("x 35 98:0 / /mnt rw - ext3 /dev/root rw").is_err());
        assert!(parse_mountinfo("36 35 98-0 / /mnt rw - ext3 /dev/root rw").is_err());
    }

    #[test]
    fn parses_captured_mountinfo_and_finds_root() {
        let entries =
            parse_mountinfo(&fixture("linux/debian12-x86_64-docker-vm/mountinfo")).unwrap();
        assert_eq!(entries.len(), 20);
        let root = entries.iter().find(|e| e.mount_point == "/").unwrap();
        assert_eq!(root.fs_type, "ext4");
        assert_eq!(root.source, "/dev/vda");
    }

    #[test]
    fn parses_proc_mounts_fallback() {
        let m =
            parse_proc_mounts("/dev/vda / ext4 rw,relatime 0 0\nproc /proc proc rw 0 0\n").unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].mountpoint, "/");
        assert_eq!(m[0].device, "/dev/vda");
        assert_eq!(m[1].fstype, "proc");
        assert!(parse_proc_mounts("/dev/vda /\n").is_err());
        let captured =
            parse_proc_mounts(&fixture("linux/debian12-x86_64-docker-vm/mounts")).unwrap();
        assert!(captured.iter().any(|m| m.mountpoint == "/"));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn read_mounts_falls_back_to_proc_mounts() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("mounts"), "tmpfs /run tmpfs rw 0 0\n").unwrap();
        let roots = HostRoots {
            procfs: dir.path().to_path_buf(),
            ..HostRoots::default()
        };
        let m = read_mounts(&roots).unwrap();
        assert_eq!(
            m,
            vec![MountEntry {
                mountpoint: "/run".into(),
                device: "tmpfs".into(),
                fstype: "tmpfs".into()
            }]
        );
        std::fs::remove_file(dir.path().join("mounts")).unwrap();
        assert!(matches!(read_mounts(&roots), Err(CollectError::Io { .. })));
    }
}
