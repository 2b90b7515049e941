//! The syslog-file fallback: the tail of `/var/log/syslog` or
//! `/var/log/messages`, read backwards from the end in blocks so a large
//! file costs only the bytes of the entries returned.
//!
//! Line formats (as rsyslog writes them):
//! - RFC 3164 / `RSYSLOG_TraditionalFileFormat`:
//!   `Nov 25 10:00:05 host sshd[123]: msg` (local time, no year);
//! - `RSYSLOG_FileFormat` (Debian's default since 12):
//!   `2026-11-25T10:00:05.123456+00:00 host sshd[123]: msg`;
//! - RFC 5424 / `RSYSLOG_SyslogProtocol23Format`:
//!   `<38>1 2026-11-25T10:00:05.123456+00:00 host sshd 123 - - msg`.
//!
//! Only the RFC 5424 form carries the priority. For the others the level is
//! *inferred* from the message, conservatively: `error`, `fail`, `fatal` or
//! `panic` → ERROR, `warn` → WARNING, anything else INFO. `min_level`
//! filters on that inferred level.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use spectra_protocol::{LogEntry, LogLevel};

use super::{level_of, LogFilter};

/// A line that is not in a syslog format this parser knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("syslog line: {0}")]
pub struct SyslogParseError(String);

fn bad(why: &str) -> SyslogParseError {
    SyslogParseError(why.to_owned())
}

/// Parses one syslog file line. `now` and `tz` date RFC 3164 stamps, which
/// have neither year nor zone: the local time `tz` in `now`'s year, or the
/// previous year when that would be more than a day in the future (a
/// December line read in January).
pub fn parse_syslog_line<Tz: TimeZone>(
    line: &str,
    now: DateTime<Utc>,
    tz: &Tz,
) -> Result<LogEntry, SyslogParseError> {
    let line = line.trim_end_matches(['\r', '\n']);
    let (priority, rest) = split_priority(line)?;
    if let Some(rest5424) = priority.and(rest.strip_prefix("1 ")) {
        return parse_rfc5424(rest5424, priority);
    }
    let (timestamp, rest) = if rest.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        let (stamp, rest) = rest
            .split_once(' ')
            .ok_or_else(|| bad("no space after the timestamp"))?;
        let t = DateTime::parse_from_rfc3339(stamp)
            .map_err(|e| SyslogParseError(format!("timestamp `{stamp}`: {e}")))?;
        (t.with_timezone(&Utc), rest)
    } else {
        parse_rfc3164_stamp(rest, now, tz)?
    };
    let (_host, rest) = rest
        .trim_start()
        .split_once(' ')
        .ok_or_else(|| bad("no host"))?;
    let (source, pid, message) = split_tag(rest);
    let level = match priority {
        Some(p) => level_of(p),
        None => infer_level(&message),
    };
    Ok(LogEntry {
        timestamp,
        source,
        level,
        message,
        pid,
        process_name: None,
    })
}

/// `<PRI>` at the start of a line, as a number 0-191.
fn split_priority(line: &str) -> Result<(Option<u8>, &str), SyslogParseError> {
    let Some(rest) = line.strip_prefix('<') else {
        return Ok((None, line));
    };
    let (digits, rest) = rest
        .split_once('>')
        .ok_or_else(|| bad("`<` without a closing `>`"))?;
    let pri: u8 = digits
        .parse()
        .ok()
        .filter(|p| *p <= 191)
        .ok_or_else(|| SyslogParseError(format!("priority `<{digits}>` is not 0-191")))?;
    Ok((Some(pri), rest))
}

/// `TIMESTAMP HOST APP PROCID MSGID SD MSG` (RFC 5424 §6), after `<PRI>1 `.
fn parse_rfc5424(rest: &str, priority: Option<u8>) -> Result<LogEntry, SyslogParseError> {
    let mut fields = rest.splitn(6, ' ');
    let mut next = |what: &str| {
        fields
            .next()
            .ok_or_else(|| SyslogParseError(format!("RFC 5424 line has no {what}")))
    };
    let stamp = next("timestamp")?;
    let _host = next("hostname")?;
    let app = next("app-name")?;
    let procid = next("procid")?;
    let _msgid = next("msgid")?;
    let sd_and_msg = fields.next().unwrap_or("");
    let timestamp = DateTime::parse_from_rfc3339(stamp)
        .map_err(|e| SyslogParseError(format!("timestamp `{stamp}`: {e}")))?
        .with_timezone(&Utc);
    let message = skip_structured_data(sd_and_msg)?;
    // A UTF-8 message may start with a BOM (§6.4); rsyslog adds a space.
    let message = message.trim_start_matches('\u{feff}').trim_start();
    let nil = |s: &str| (s != "-").then(|| s.to_owned());
    let level = priority.map_or_else(|| infer_level(message), level_of);
    Ok(LogEntry {
        timestamp,
        source: nil(app).unwrap_or_else(|| "unknown".into()),
        level,
        message: message.to_owned(),
        pid: procid.parse().ok(),
        process_name: None,
    })
}

/// The text after STRUCTURED-DATA: `-`, or `[id k="v"]...` where `\]`
/// escapes a bracket inside a value.
fn skip_structured_data(s: &str) -> Result<&str, SyslogParseError> {
    if let Some(rest) = s.strip_prefix('-') {
        return Ok(rest);
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    while bytes.get(i) == Some(&b'[') {
        let mut escaped = false;
        i += 1;
        loop {
            match bytes.get(i) {
                None => return Err(bad("unterminated structured data")),
                Some(b'\\') if !escaped => escaped = true,
                Some(b']') if !escaped => break,
                _ => escaped = false,
            }
            i += 1;
        }
        i += 1;
    }
    if i == 0 {
        return Err(bad("structured data is neither `-` nor `[...]`"));
    }
    Ok(&s[i..])
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `Mmm dd hh:mm:ss ` (day space-padded: `Nov  5`).
fn parse_rfc3164_stamp<'a, Tz: TimeZone>(
    s: &'a str,
    now: DateTime<Utc>,
    tz: &Tz,
) -> Result<(DateTime<Utc>, &'a str), SyslogParseError> {
    let month = s
        .get(..3)
        .and_then(|m| MONTHS.iter().position(|x| *x == m))
        .ok_or_else(|| bad("no timestamp (neither RFC 3164 `Mmm dd hh:mm:ss` nor RFC 3339)"))?;
    let rest = s[3..].trim_start_matches(' ');
    let (day, rest) = rest.split_once(' ').ok_or_else(|| bad("no day"))?;
    let (time, rest) = rest.split_once(' ').ok_or_else(|| bad("no time"))?;
    let day: u32 = day
        .parse()
        .map_err(|_| SyslogParseError(format!("day `{day}` is not a number")))?;
    let time = NaiveTime::parse_from_str(time, "%H:%M:%S")
        .map_err(|_| SyslogParseError(format!("time `{time}` is not hh:mm:ss")))?;
    let this_year = now.with_timezone(tz).year();
    let at = |year: i32| {
        let date = NaiveDate::from_ymd_opt(year, month as u32 + 1, day)?;
        tz.from_local_datetime(&NaiveDateTime::new(date, time))
            .earliest()
            .map(|t| t.with_timezone(&Utc))
    };
    let tomorrow = now + chrono::Duration::days(1);
    let stamp = match at(this_year) {
        Some(t) if t <= tomorrow => t,
        _ => at(this_year - 1)
            .ok_or_else(|| SyslogParseError(format!("no date {} {day}", MONTHS[month])))?,
    };
    Ok((stamp, rest))
}

/// `tag[pid]: message`, `tag: message`; anything else is all message.
fn split_tag(s: &str) -> (String, Option<u32>, String) {
    let end = s.find([':', '[', ' ']).unwrap_or(s.len());
    let (tag, after) = s.split_at(end);
    let (pid, after) = match after.strip_prefix('[').and_then(|a| a.split_once(']')) {
        Some((pid, after)) => (pid.parse().ok(), after),
        None => (None, after),
    };
    match after.strip_prefix(':') {
        Some(message) if !tag.is_empty() => (
            tag.to_owned(),
            pid,
            message.strip_prefix(' ').unwrap_or(message).to_owned(),
        ),
        _ => ("unknown".to_owned(), None, s.to_owned()),
    }
}

/// The level a message's words suggest; see the module docs.
pub fn infer_level(message: &str) -> LogLevel {
    let lower = message.to_lowercase();
    if ["error", "fail", "fatal", "panic"]
        .iter()
        .any(|w| lower.contains(w))
    {
        LogLevel::Error
    } else if lower.contains("warn") {
        LogLevel::Warning
    } else {
        LogLevel::Info
    }
}

/// Lines of a file from the last to the first, read in blocks from the end.
pub struct ReverseLines<R> {
    reader: R,
    /// File offset of `pending[0]`.
    pos: u64,
    /// Bytes read but not yet returned (the start of a line so far).
    pending: Vec<u8>,
    block: usize,
    bytes_read: u64,
}

impl<R: Read + Seek> ReverseLines<R> {
    pub fn new(mut reader: R, block: usize) -> io::Result<Self> {
        let pos = reader.seek(SeekFrom::End(0))?;
        Ok(Self {
            reader,
            pos,
            pending: Vec::new(),
            block: block.max(1),
            bytes_read: 0,
        })
    }

    /// Bytes read from the file so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// The previous line (without its newline), or `None` at the start.
    pub fn next_line(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(i) = self.pending.iter().rposition(|b| *b == b'\n') {
                let line = self.pending.split_off(i + 1);
                self.pending.truncate(i);
                return Ok(Some(line));
            }
            if self.pos == 0 {
                return Ok((!self.pending.is_empty()).then(|| std::mem::take(&mut self.pending)));
            }
            let n = self.pos.min(self.block as u64);
            self.pos -= n;
            self.reader.seek(SeekFrom::Start(self.pos))?;
            let mut chunk = vec![0; n as usize];
            self.reader.read_exact(&mut chunk)?;
            self.bytes_read += n;
            chunk.extend_from_slice(&self.pending);
            self.pending = chunk;
        }
    }
}

/// What the tail of a syslog file gave.
#[derive(Debug)]
pub struct SyslogTail {
    /// Oldest first.
    pub entries: Vec<LogEntry>,
    pub bytes_read: u64,
}

/// Reads `path` from its end until `filter.max` entries matched, a line
/// older than `filter.since`, the start of the file, or `read_cap` bytes.
/// `program`: keep only lines of this program (a unit's name).
pub fn read_syslog_tail<Tz: TimeZone>(
    path: &Path,
    filter: &LogFilter,
    program: Option<&str>,
    read_cap: u64,
    now: DateTime<Utc>,
    tz: &Tz,
) -> io::Result<SyslogTail> {
    let mut lines = ReverseLines::new(File::open(path)?, 64 << 10)?;
    let mut newest_first = Vec::new();
    while newest_first.len() < filter.max && lines.bytes_read() < read_cap {
        let Some(line) = lines.next_line()? else {
            break;
        };
        let text = String::from_utf8_lossy(&line);
        if text.trim().is_empty() {
            continue;
        }
        // Lines that are not syslog lines (a stray continuation) are skipped.
        let Ok(entry) = parse_syslog_line(&text, now, tz) else {
            continue;
        };
        if filter.since.is_some_and(|since| entry.timestamp < since) {
            // The file is in time order: everything before is older.
            break;
        }
        if program.is_some_and(|p| entry.source != p) {
            continue;
        }
        if filter.matches(&entry) {
            newest_first.push(entry);
        }
    }
    newest_first.reverse();
    Ok(SyslogTail {
        entries: newest_first,
        bytes_read: lines.bytes_read(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::FixedOffset;
    use std::io::Cursor;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap()
    }

    #[test]
    fn rfc3164_year_comes_from_now_or_the_year_before() {
        let e = parse_syslog_line("Nov  5 10:00:05 h sshd[1]: x", now(), &Utc).unwrap();
        assert_eq!(
            e.timestamp,
            Utc.with_ymd_and_hms(2026, 11, 5, 10, 0, 5).unwrap()
        );
        let e = parse_syslog_line("Dec 31 23:59:59 h cron: x", now(), &Utc).unwrap();
        assert_eq!(e.timestamp.year(), 2025);
        // Local time: 10:00 at +02:00 is 08:00 UTC.
        let tz = FixedOffset::east_opt(2 * 3600).unwrap();
        let e = parse_syslog_line("Nov 25 10:00:00 h cron: x", now(), &tz).unwrap();
        assert_eq!(
            e.timestamp,
            Utc.with_ymd_and_hms(2026, 11, 25, 8, 0, 0).unwrap()
        );
    }

    #[test]
    fn tags_without_colon_leave_the_whole_text_as_message() {
        let e = parse_syslog_line("Nov 25 10:00:05 h -- MARK --", now(), &Utc).unwrap();
        assert_eq!(e.source, "unknown");
        assert_eq!(e.message, "-- MARK --");
        assert_eq!(e.pid, None);
    }

    #[test]
    fn structured_data_with_escaped_brackets_is_skipped() {
        let e = parse_syslog_line(
            r#"<165>1 2026-11-25T10:00:05.003Z h app 42 ID47 [ex@32473 k="a\]b"][b x="1"] BOMmsg"#,
            now(),
            &Utc,
        )
        .unwrap();
        assert_eq!(e.message, "BOMmsg");
        assert_eq!(e.level, LogLevel::Notice);
        assert_eq!(e.pid, Some(42));
        assert_eq!(e.source, "app");
    }

    #[test]
    fn malformed_lines_say_why() {
        for (line, why) in [
            ("hello world", "no timestamp"),
            ("<999>1 x", "priority"),
            ("Nov xx 10:00:00 h a: b", "day"),
            ("2026-13-01T00:00:00Z h a: b", "timestamp"),
            (
                "<13>1 2026-11-25T10:00:05Z h app 1 - [unterminated",
                "structured",
            ),
        ] {
            let e = parse_syslog_line(line, now(), &Utc)
                .unwrap_err()
                .to_string();
            assert!(e.contains(why), "{line}: {e}");
        }
    }

    #[test]
    fn levels_are_inferred_conservatively() {
        assert_eq!(infer_level("Connection FAILED"), LogLevel::Error);
        assert_eq!(infer_level("warning: low space"), LogLevel::Warning);
        assert_eq!(infer_level("Started session 4"), LogLevel::Info);
    }

    #[test]
    fn reverse_lines_cross_block_boundaries() {
        let text = b"first line\nsecond\n\nthird one is longer\n";
        for block in [1, 3, 7, 64] {
            let mut r = ReverseLines::new(Cursor::new(&text[..]), block).unwrap();
            let mut got = Vec::new();
            while let Some(l) = r.next_line().unwrap() {
                got.push(String::from_utf8(l).unwrap());
            }
            assert_eq!(
                got,
                ["", "third one is longer", "", "second", "first line"],
                "block {block}"
            );
            assert_eq!(r.bytes_read(), text.len() as u64);
        }
        // No trailing newline: the last line is still whole.
        let mut r = ReverseLines::new(Cursor::new(&b"a\nb"[..]), 2).unwrap();
        assert_eq!(r.next_line().unwrap().unwrap(), b"b");
        assert_eq!(r.next_line().unwrap().unwrap(), b"a");
        assert!(r.next_line().unwrap().is_none());
    }
}
